// Evaluate IAM requests with @cloud-copilot/iam-simulate (pinned in package.json).
// stdin: a JSON array of Simulation objects; stdout: a JSON array of
// {result: "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied" | "Error", errors}, in the same order.
import { runSimulation } from '@cloud-copilot/iam-simulate'

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const simulations = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const out = []
for (const simulation of simulations) {
  const r = await runSimulation(simulation, {})
  out.push(r.resultType === 'error'
    ? { result: 'Error', errors: r.errors }
    : { result: r.overallResult })
}
process.stdout.write(JSON.stringify(out))
