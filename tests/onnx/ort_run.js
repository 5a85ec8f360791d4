// Runs an ONNX file in ONNX Runtime (the onnxruntime-node package): the inputs as JSON on
// stdin ({"x": {"dims": [37, 4], "type": "float32", "data": [...]}}), the outputs as JSON
// on stdout, in the same form. Used by the tests to check exported files against a
// runtime that is not ours.
//   node ort_run.js MODEL.onnx < inputs.json      (ORT_NODE_MODULE: the package's folder)
//   node ort_run.js --batch < jobs.json            [{"model": PATH, "inputs": {...}}, ...] ->
//                                                  [{"outputs": {...}} or {"error": "..."}]
const ort = require(process.env.ORT_NODE_MODULE || 'onnxruntime-node');

const types = {float32: Float32Array, float64: Float64Array, int64: BigInt64Array};

function tensor(t) {
  const data = t.type === 'int64' ? BigInt64Array.from(t.data.map(BigInt)) : types[t.type].from(t.data);
  return new ort.Tensor(t.type, data, t.dims);
}

async function run(path, given) {
  const session = await ort.InferenceSession.create(path,
      {intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'disabled'});
  const feeds = {};
  for (const [name, t] of Object.entries(given)) feeds[name] = tensor(t);
  const out = await session.run(feeds);
  const result = {};
  for (const [name, t] of Object.entries(out))
    result[name] = {dims: t.dims, type: t.type, data: Array.from(t.data, Number)};
  return result;
}

async function main() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const given = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  if (process.argv[2] === '--batch') {
    const results = [];
    for (const job of given) {
      try {
        results.push({outputs: await run(job.model, job.inputs)});
      } catch (e) {
        results.push({error: e.message});
      }
    }
    process.stdout.write(JSON.stringify(results));
    return;
  }
  process.stdout.write(JSON.stringify(await run(process.argv[2], given)));
}

main().catch((e) => {
  process.stderr.write(`ort_run: ${e.message}\n`);
  process.exit(1);
});
