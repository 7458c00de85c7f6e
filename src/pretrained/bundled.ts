/** The model shipped in the repository (models/flamingo-fmnist, made by `npm run train:bundled`). */
import { fileURLToPath } from 'node:url';

export const BUNDLED_MODEL_DIR = fileURLToPath(new URL('../../models/flamingo-fmnist', import.meta.url));

/** The hint for a missing bundled model. */
export const BUNDLED_MODEL_HINT = 'the bundled model: train it first (npm run train:bundled), or pass --model DIR';
