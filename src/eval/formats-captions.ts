/**
 * COCO captions: the annotation file, caption results, and joining them as COCOEvalCap does.
 */
import {
  EntryReader, FormatError, UniqueIds, readJsonFile, readResults, topLevelArray, unknownId, type Id,
} from './formats.ts';

export interface CocoCaptions {
  /** Image ids in file order. */
  readonly imageIds: Id[];
  readonly references: Map<Id, string[]>;
}

export interface CaptionResult {
  readonly imageId: Id;
  readonly caption: string;
}

/** COCO captions annotation file: {images: [{id}], annotations: [{image_id, caption}]}. */
export function readCocoCaptions(file: string): CocoCaptions {
  const data = readJsonFile(file);
  const images = topLevelArray(file, data, 'images');
  const anns = topLevelArray(file, data, 'annotations');
  const imgReader = new EntryReader(`${file} images`, 'image', 'id');
  const unique = new UniqueIds(`${file} images`, 'id', 'image');
  const imageIds: Id[] = [];
  const references = new Map<Id, string[]>();
  images.forEach((v, i) => {
    const id = imgReader.id(imgReader.object(v, i), i);
    unique.add(id, i);
    imageIds.push(id);
    references.set(id, []);
  });
  const annReader = new EntryReader(`${file} annotations`, 'annotation', 'image_id');
  anns.forEach((v, i) => {
    const o = annReader.object(v, i);
    const id = annReader.id(o, i);
    const caption = annReader.string(o, 'caption', i, id);
    const refs = references.get(id);
    if (!refs) throw unknownId(`${file} annotations`, 'image_id', id, i, `${file} images`, (k) => references.has(k));
    refs.push(caption);
  });
  return { imageIds, references };
}

/** Caption results: [{image_id, caption}]. */
export function readCaptionResults(file: string): CaptionResult[] {
  return readResults(file, 'image_id', (r, o, i, imageId) => {
    const caption = r.string(o, 'caption', i, imageId);
    return { imageId, caption };
  });
}

export interface JoinedCaption {
  readonly imageId: Id;
  readonly candidate: string;
  readonly references: string[];
}

/**
 * COCOEvalCap evaluates exactly the images present in the results, in annotation-file order.
 * Every result must name an annotated image that has at least one reference.
 */
export function joinCaptions(ann: CocoCaptions, annFile: string, results: readonly CaptionResult[], resFile: string): JoinedCaption[] {
  const byId = new Map<Id, string>();
  results.forEach((r, i) => {
    const refs = ann.references.get(r.imageId);
    if (!refs) throw unknownId(resFile, 'image_id', r.imageId, i, annFile, (k) => ann.references.has(k));
    if (refs.length === 0) {
      throw new FormatError(resFile, `image has no reference captions in ${annFile}`, { index: i, id: r.imageId, idField: 'image_id' });
    }
    byId.set(r.imageId, r.caption);
  });
  return ann.imageIds
    .filter((id) => byId.has(id))
    .map((id) => ({ imageId: id, candidate: byId.get(id)!, references: ann.references.get(id)! }));
}
