/**
 * Child-process entry for the hostile-input tests: read each checkpoint named on the command line (.pt/.bin with
 * the torch reader, anything else with both safetensors readers) and print one JSON line per file: the outcome, the error's class
 * and first message line, whether it is one of ours (a crash such as a RangeError is not), and the time it took.
 */
import { readTorchCheckpoint } from '../../src/io/torch-pickle.ts';
import { TorchCheckpointError } from '../../src/io/torch-limits.ts';
import { readSafetensors, SafetensorsReader } from '../../src/io/safetensors-read.ts';
import { SafetensorsError } from '../../src/io/safetensors.ts';

for (const file of process.argv.slice(2)) {
  const t0 = performance.now();
  let line: Record<string, unknown>;
  try {
    let n: number;
    if (/\.(pt|bin)$/.test(file)) n = readTorchCheckpoint(file).size;
    else {
      // Both safetensors readers: the whole-file one and the positioned one the model loader uses.
      const r = SafetensorsReader.open(file);
      try { n = r.entries().length; } finally { r.close(); }
      if (readSafetensors(file).entries().length !== n) throw new Error('the two safetensors readers disagree');
    }
    line = { file, ok: true, tensors: n };
  } catch (e) {
    const err = e as Error;
    line = {
      file, ok: false, ours: e instanceof TorchCheckpointError || e instanceof SafetensorsError,
      name: err.name, message: String(err.message), lines: String(err.message).split('\n').length,
    };
  }
  process.stdout.write(JSON.stringify({ ...line, ms: performance.now() - t0 }) + '\n');
}
