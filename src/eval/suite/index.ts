/** The built-in few-shot suite (`flamingo eval --suite builtin`; docs/EVAL.md). */
export * from './plan.ts';
export { runSuite } from './runner.ts';
export { suiteSvg, suiteTable } from './report.ts';
export { BINDING_INVENTORIES } from './fast-binding.ts';
export { SUITE_CAPTION_STYLE, tenfold } from './scenes.ts';
export { scoreResults, scoreVqa } from './protocol.ts';
export { formatAnswer, formatEpisode, formatPrompt } from './format.ts';
