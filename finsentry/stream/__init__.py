"""The streaming scorer around ``finsentry.streaming.StreamScorer``: stream events, DynamoDB
profiles, Firehose / SNS / SQS outputs, the SSM-located model, metrics and the service that
wires them (the Lambda handler only calls ``ScorerService.process``)."""
