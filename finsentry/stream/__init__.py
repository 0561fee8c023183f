"""The streaming scorer: stream events, the scoring core, the per-account state and its write
protocol, the DynamoDB store, the sinks, the runtime wiring. ``service.ScorerService`` is the entry."""
