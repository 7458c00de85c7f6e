/**
 * Child-process entry for the hostile-input tests: read each checkpoint named on the command line (.pt/.bin with
 * the torch reader, anything else as safetensors) and print one JSON line per file: the outcome, the error's class
 * and first message line, whether it is one of ours (a crash such as a RangeError is not), and the time it took.
 */
import { readTorchCheckpoint, TorchCheckpointError } from '../../src/io/torch-pickle.ts';
import { readSafetensors, SafetensorsError } from '../../src/io/safetensors.ts';

for (const file of process.argv.slice(2)) {
  const t0 = performance.now();
  let line: Record<string, unknown>;
  try {
    const n = /\.(pt|bin)$/.test(file) ? readTorchCheckpoint(file).size : readSafetensors(file).entries().length;
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
