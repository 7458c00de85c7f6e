/** One image to score: a candidate caption and its references, both already tokenized (space separated). */
export interface CaptionSample {
  readonly candidate: string;
  readonly references: readonly string[];
}
