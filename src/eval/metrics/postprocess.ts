/** OpenFlamingo's post-processing of raw generations before they are scored. Neither strips whitespace. */

/** Captioning: the text before the first (case-sensitive) "Output", with every double quote removed. */
export function postprocessCaptionGeneration(generation: string): string {
  const cut = generation.indexOf('Output');
  return (cut === -1 ? generation : generation.slice(0, cut)).replaceAll('"', '');
}

/**
 * VQA: `re.split("Question|Answer|Short", s, 1)[0]` then `re.split(", ", s, 1)[0]`, i.e. the text
 * before the leftmost of those markers, then before the first ", ".
 */
export function postprocessVqaGeneration(generation: string): string {
  const m = /Question|Answer|Short/.exec(generation);
  const head = m ? generation.slice(0, m.index) : generation;
  const comma = head.indexOf(', ');
  return comma === -1 ? head : head.slice(0, comma);
}
