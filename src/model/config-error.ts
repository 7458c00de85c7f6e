/** A model configuration that cannot be used; the message names the field (or file) and the problem. */
import { FlamingoError } from '../errors.ts';

export class ConfigError extends FlamingoError {}
