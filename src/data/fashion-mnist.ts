/**
 * Fashion-MNIST from the Debian package `dataset-fashion-mnist` (gzip IDX files under
 * /usr/share/datasets/fashion-mnist): 60 000 train / 10 000 test 28x28 grayscale clothing images,
 * 10 classes. IDX format: big-endian magic (0x00 0x00 dtype ndims), ndims u32 sizes, then the data.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { grayToRgb, type RgbImage } from './image.ts';
import { FlamingoError } from '../errors.ts';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];
const SIDE = 28;
const FILES = {
  train: { images: 'train-images-idx3-ubyte.gz', labels: 'train-labels-idx1-ubyte.gz' },
  test: { images: 't10k-images-idx3-ubyte.gz', labels: 't10k-labels-idx1-ubyte.gz' },
} as const;

export class IdxFormatError extends FlamingoError {
  constructor(file: string, detail: string) {
    super(`IDX file ${file}: ${detail}`);
  }
}

export class DatasetMissingError extends FlamingoError {}

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Parse an (optionally gzipped) IDX buffer holding unsigned bytes (dtype 0x08). */
export function parseIdx(bytes: Uint8Array, file: string): IdxArray {
  let buf = bytes;
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      throw new IdxFormatError(file, `gzip data is corrupt (${(e as Error).message})`);
    }
  }
  if (buf.length < 4) throw new IdxFormatError(file, `only ${buf.length} bytes, no header`);
  if (buf[0] !== 0 || buf[1] !== 0) throw new IdxFormatError(file, `bad magic ${[...buf.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')} (expected 00 00 08 nd)`);
  if (buf[2] !== 0x08) throw new IdxFormatError(file, `element type 0x${buf[2]!.toString(16)} unsupported (only unsigned byte, 0x08)`);
  const nd = buf[3]!;
  if (nd < 1 || buf.length < 4 + 4 * nd) throw new IdxFormatError(file, `header declares ${nd} dimensions but is truncated`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const count = dims.reduce((a, b) => a * b, 1);
  const offset = 4 + 4 * nd;
  if (buf.length - offset !== count) {
    throw new IdxFormatError(file, `dims [${dims.join(', ')}] need ${count} bytes of data, found ${buf.length - offset}`);
  }
  return { dims, data: buf.subarray(offset) };
}

export interface FashionMnist {
  /** n * 28 * 28 bytes, image-major, row-major within an image; 0 = background (black). */
  images: Uint8Array;
  labels: Uint8Array;
  n: number;
  height: number;
  width: number;
  classNames: readonly string[];
}

export function fashionMnistAvailable(dir: string = FASHION_MNIST_DIR): boolean {
  return Object.values(FILES).every((f) => existsSync(join(dir, f.images)) && existsSync(join(dir, f.labels)));
}

export function loadFashionMnist(options: { split: 'train' | 'test'; dir?: string }): FashionMnist {
  const dir = options.dir ?? FASHION_MNIST_DIR;
  const names = FILES[options.split];
  if (!names) throw new RangeError(`loadFashionMnist: split must be 'train' or 'test', got ${JSON.stringify(options.split)}`);
  const read = (name: string): IdxArray => {
    const path = join(dir, name);
    if (!existsSync(path)) {
      throw new DatasetMissingError(`Fashion-MNIST file ${path} not found; install it with \`apt-get install dataset-fashion-mnist\` or pass { dir }`);
    }
    return parseIdx(readFileSync(path), path);
  };
  const img = read(names.images);
  const lab = read(names.labels);
  if (img.dims.length !== 3 || img.dims[1] !== SIDE || img.dims[2] !== SIDE) {
    throw new IdxFormatError(join(dir, names.images), `expected dims [n, 28, 28], got [${img.dims.join(', ')}]`);
  }
  if (lab.dims.length !== 1 || lab.dims[0] !== img.dims[0]) {
    throw new IdxFormatError(join(dir, names.labels), `expected ${img.dims[0]} labels, got dims [${lab.dims.join(', ')}]`);
  }
  for (let i = 0; i < lab.data.length; i++) {
    if (lab.data[i]! >= FASHION_MNIST_CLASSES.length) throw new IdxFormatError(join(dir, names.labels), `label ${lab.data[i]} at index ${i} is not in 0..9`);
  }
  return { images: img.data, labels: lab.data, n: img.dims[0]!, height: SIDE, width: SIDE, classNames: FASHION_MNIST_CLASSES };
}

/** Image i as an RGB picture (gray replicated). */
export function fashionMnistImage(ds: FashionMnist, i: number): RgbImage {
  if (!Number.isInteger(i) || i < 0 || i >= ds.n) throw new RangeError(`fashionMnistImage: index ${i} outside 0..${ds.n - 1}`);
  const px = ds.width * ds.height;
  return grayToRgb(ds.images.subarray(i * px, (i + 1) * px), ds.width, ds.height);
}

/** The first `perClass` test images of each class in `ids`, grouped by class (named by FASHION_MNIST_CLASSES). */
export function fashionMnistByClass(ids: readonly number[], perClass: number, dir: string = FASHION_MNIST_DIR): { id: string; images: RgbImage[] }[] {
  if (!fashionMnistAvailable(dir)) throw new DatasetMissingError(`Fashion-MNIST is not installed in ${dir}`, { hint: 'apt-get install dataset-fashion-mnist' });
  const ds = loadFashionMnist({ split: 'test', dir });
  const out = ids.map((c) => ({ id: FASHION_MNIST_CLASSES[c]!, images: [] as RgbImage[] }));
  for (let i = 0; i < ds.n && out.some((c) => c.images.length < perClass); i++) {
    const k = ids.indexOf(ds.labels[i]!);
    if (k >= 0 && out[k]!.images.length < perClass) out[k]!.images.push(fashionMnistImage(ds, i));
  }
  return out;
}
