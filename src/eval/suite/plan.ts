/**
 * The built-in few-shot suite's plan (tasks, metrics, shot and item counts) and the shapes of its
 * results. The suite itself: runner.ts; its task families: fast-binding.ts, scenes.ts, tuxpaint.ts,
 * format.ts; its tables and pictures: report.ts. See docs/EVAL.md.
 */
import { FlamingoError } from '../../errors.ts';
import type { NameInventory } from '../../data/synthetic/inventories.ts';

export const BUILTIN_TASKS = [
  'fast_binding_seen', 'fast_binding_heldout', 'captioning', 'vqa', 'captioning_tuxpaint', 'format', 'video_qa',
] as const;
export type BuiltinTaskName = (typeof BUILTIN_TASKS)[number];

export const BUILTIN_METRICS: Record<BuiltinTaskName, string> = {
  fast_binding_seen: 'accuracy',
  fast_binding_heldout: 'accuracy',
  captioning: 'CIDEr',
  vqa: 'VQA accuracy',
  captioning_tuxpaint: 'CIDEr',
  format: 'exact match',
  video_qa: 'VQA accuracy',
};

export class BuiltinSuiteError extends FlamingoError {}

/** Shot counts and item counts per task; --quick trims both. */
export interface SuitePlan {
  shots: Record<BuiltinTaskName, number[]>;
  /** Queries (episodes for fast binding) per shot count. */
  items: Record<BuiltinTaskName, number>;
  /** Support pool the random demonstrations come from (synthetic and Tux Paint tasks). */
  supportPool: number;
  /** Decoding width for captioning / VQA / video QA (1 = greedy). */
  numBeams: number;
}

export function suitePlan(quick: boolean, opts: { items?: number; numBeams?: number } = {}): SuitePlan {
  const shots: SuitePlan['shots'] = {
    fast_binding_seen: quick ? [1, 3] : [1, 3, 5],
    fast_binding_heldout: quick ? [1, 3] : [1, 3, 5],
    captioning: quick ? [0, 4] : [0, 4, 8],
    vqa: quick ? [0, 4] : [0, 4, 8],
    captioning_tuxpaint: quick ? [0, 4] : [0, 4, 8],
    format: quick ? [0, 2] : [0, 2, 4],
    video_qa: quick ? [0, 2] : [0, 2, 4],
  };
  const items: SuitePlan['items'] = quick
    ? { fast_binding_seen: 10, fast_binding_heldout: 10, captioning: 8, vqa: 12, captioning_tuxpaint: 6, format: 8, video_qa: 8 }
    : { fast_binding_seen: 100, fast_binding_heldout: 100, captioning: 200, vqa: 400, captioning_tuxpaint: 48, format: 64, video_qa: 64 };
  if (opts.items !== undefined) for (const t of BUILTIN_TASKS) items[t] = opts.items;
  return { shots, items, supportPool: quick ? 32 : 64, numBeams: opts.numBeams ?? 1 };
}

export interface TaskReport {
  task: BuiltinTaskName;
  metric: string;
  /** Shot count → score (percent; CIDEr × 100); null when that shot count cannot run on this model. */
  shots: Record<string, number | null>;
  /** Queries per shot count (0 when the task was skipped). */
  items: number;
  /** Set when the whole task was skipped (data absent …). */
  skipped?: string;
  notes?: string[];
  /** Task-specific settings worth recording (ways, frames …). */
  settings?: Record<string, number | string>;
  /** VQA and video QA: shot count → question kind → accuracy (which kinds the model reads). */
  by_kind?: Record<string, Record<string, number>>;
  /**
   * Fast binding: shot count → name inventory → accuracy (BINDING_INVENTORIES). `shots` holds the generator's
   * names (the documented prompts); the others show whether the model copies any name or only names of its style.
   */
  by_inventory?: Record<string, Record<string, number | null>>;
}

export interface SuiteReport {
  model: string;
  tasks: TaskReport[];
  seconds: number;
}

export interface SuiteOptions {
  quick: boolean;
  seed: number;
  /** Overrides the items per task (tests, quick looks). */
  items?: number;
  numBeams?: number;
  tuxpaintDir?: string;
  /** Class split for fast binding; null → fast binding is skipped with a note. */
  classes: { seen: number[]; heldout: number[] } | null;
  onLog?: (line: string) => void;
  /** Run only these tasks (default: all of BUILTIN_TASKS), e.g. the ablation table's subset. */
  tasks?: readonly BuiltinTaskName[];
  /** Fast binding's name inventories (default BINDING_INVENTORIES; 'generator' is the task's score). */
  bindingInventories?: readonly NameInventory[];
}

export interface SuiteOutput {
  report: SuiteReport;
  /** The first few prompts of each (task, shots), for inspection and tests. */
  prompts: Record<string, Record<string, string[]>>;
  /** What the model answered to the first few queries of each (task, shots), beside the expected answer. */
  outputs: Record<string, Record<string, SuiteExample[]>>;
}

export interface SuiteExample {
  output: string;
  expected: string;
}
