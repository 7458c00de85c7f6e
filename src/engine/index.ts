/** The tensor engine's public surface. */
export * from './tensor.ts';
export { noGrad, isGradEnabled, backward, needsGrad } from './autograd.ts';
export { backend, withBackend, setBackend } from './backend.ts';
export { withBufferPool, BufferPool } from './buffer-pool.ts';
export * from './ops/elementwise.ts';
export * from './ops/matmul.ts';
export * from './ops/reduce.ts';
export * from './ops/norm.ts';
export * from './ops/shape.ts';
export * from './ops/attention.ts';
export * from './ops/misc.ts';
export type { Kernels, Activation } from './kernels/types.ts';
