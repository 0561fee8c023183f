"""The CDK app (``infra/app.py``), its stacks and constructs.

jsii (the bridge that runs the CDK's JavaScript under Node.js) prints a full-screen banner on every
start when the Node major is past its end of life (Node 20 since 2026-10-30; Debian 12 ships 20).
The app still works; the banner is silenced for Node 20 here, before anything imports
``aws_cdk``, with jsii's own variable (``JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION``, a list of
majors). Prefer Node 22 or 24 where you can install it (docs/operations.md).
"""

import os

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
