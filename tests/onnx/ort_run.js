// Runs an ONNX file in ONNX Runtime (the onnxruntime-node package): the inputs as JSON on
// stdin ({"x": {"dims": [37, 4], "type": "float32", "data": [...]}}), the outputs as JSON
// on stdout, in the same form. Used by the tests to check exported files against a
// runtime that is not ours.
//   node ort_run.js MODEL.onnx < inputs.json      (ORT_NODE_MODULE: the package's folder)
const ort = require(process.env.ORT_NODE_MODULE || 'onnxruntime-node');

const types = {float32: Float32Array, float64: Float64Array, int64: BigInt64Array};

async function main() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const given = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  const session = await ort.InferenceSession.create(process.argv[2],
      {intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'disabled'});
  const feeds = {};
  for (const [name, t] of Object.entries(given)) {
    const data = t.type === 'int64' ? BigInt64Array.from(t.data.map(BigInt)) : types[t.type].from(t.data);
    feeds[name] = new ort.Tensor(t.type, data, t.dims);
  }
  const out = await session.run(feeds);
  const result = {};
  for (const [name, t] of Object.entries(out))
    result[name] = {dims: t.dims, type: t.type, data: Array.from(t.data, Number)};
  process.stdout.write(JSON.stringify(result));
}

main().catch((e) => {
  process.stderr.write(`ort_run: ${e.message}\n`);
  process.exit(1);
});
