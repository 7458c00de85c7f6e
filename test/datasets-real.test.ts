import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import {
  DatasetMissingError, FASHION_MNIST_CLASSES, IdxFormatError, fashionMnistAvailable, fashionMnistImage, loadFashionMnist, parseIdx,
} from '../src/data/fashion-mnist.ts';
import { decodeImage, encodePng, loadImage } from '../src/data/image.ts';
import { findTuxpaintRoot, parseStampCaption, scanTuxpaint, TuxpaintMissingError } from '../src/data/tuxpaint.ts';
import {
  CorpusUnavailableError, loadTextCorpus, parseFortuneFile, parseWordnetData, textSourceAvailable,
} from '../src/data/text-corpus.ts';

const noFashion = fashionMnistAvailable() ? false : 'Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)';
const noTux = findTuxpaintRoot() ? false : 'Tux Paint stamps not fetched (run scripts/fetch-tuxpaint.sh)';
const noWordnet = textSourceAvailable('wordnet') ? false : 'WordNet not installed (apt-get install wordnet-base)';
const noFortunes = textSourceAvailable('fortunes') ? false : 'fortunes not installed (apt-get install fortunes-min)';

function idx(header: number[], dims: number[], data: number[]): Uint8Array {
  const buf = Buffer.alloc(4 + 4 * dims.length + data.length);
  buf.set(header, 0);
  dims.forEach((d, i) => buf.writeUInt32BE(d, 4 + 4 * i));
  buf.set(data, 4 + 4 * dims.length);
  return buf;
}

test('IDX parser: dims, gzip, and clear errors', () => {
  const ok = parseIdx(gzipSync(idx([0, 0, 8, 2], [2, 3], [1, 2, 3, 4, 5, 6])), 'm.gz');
  assert.deepEqual(ok.dims, [2, 3]);
  assert.deepEqual([...ok.data], [1, 2, 3, 4, 5, 6]);
  assert.throws(() => parseIdx(idx([1, 2, 8, 1], [1], [0]), 'bad-magic'), (e: unknown) => e instanceof IdxFormatError && /bad-magic.*bad magic/.test(e.message));
  assert.throws(() => parseIdx(idx([0, 0, 0x0d, 1], [1], [0, 0, 0, 0]), 'float'), /element type 0xd/);
  assert.throws(() => parseIdx(idx([0, 0, 8, 2], [2, 3], [1, 2, 3]), 'short'), /need 6 bytes of data, found 3/);
  assert.throws(() => parseIdx(new Uint8Array([0x1f, 0x8b, 1, 2, 3]), 'junk.gz'), /gzip data is corrupt/);
  assert.throws(() => loadFashionMnist({ split: 'train', dir: '/nonexistent' }), (e: unknown) => e instanceof DatasetMissingError && /dataset-fashion-mnist/.test(e.message));
});

test('Fashion-MNIST: 60000 train / 10000 test, balanced labels 0..9, real pictures', { skip: noFashion }, () => {
  const train = loadFashionMnist({ split: 'train' });
  const testSplit = loadFashionMnist({ split: 'test' });
  assert.equal(train.n, 60000);
  assert.equal(testSplit.n, 10000);
  assert.equal(train.images.length, 60000 * 28 * 28);
  assert.equal(testSplit.labels.length, 10000);
  assert.deepEqual(train.classNames, FASHION_MNIST_CLASSES);
  assert.equal(train.classNames[9], 'Ankle boot');
  // The dataset is balanced: 6000 (train) / 1000 (test) per class.
  for (const [ds, per] of [[train, 6000], [testSplit, 1000]] as const) {
    const counts = new Array(10).fill(0);
    for (const l of ds.labels) counts[l]++;
    assert.deepEqual(counts, new Array(10).fill(per));
  }
  const img = fashionMnistImage(train, 0);
  assert.deepEqual([img.width, img.height], [28, 28]);
  const values = new Set(img.data);
  assert.ok(values.size > 20, `expected a varied picture, got ${values.size} distinct values`);
  assert.ok(values.has(0), 'Fashion-MNIST backgrounds are black');
  const back = decodeImage(encodePng(img), 'fmnist0.png');
  assert.deepEqual(back.data, img.data);
});

test('Tux Paint caption parsing (English first line, translations ignored)', () => {
  assert.equal(parseStampCaption('A blackbird.\nach.utf8=Winyo macol.\nde.utf8=Eine Amsel.\n'), 'A blackbird.');
  assert.equal(parseStampCaption('\n  A calculator.  6x7=42 \nfr.utf8=Une calculatrice.'), 'A calculator.  6x7=42');
  assert.equal(parseStampCaption('sr@latin.utf8=Kukavica.\nen_GB.utf8=A cuckoo.'), null);
  assert.equal(parseStampCaption(''), null);
  assert.throws(() => scanTuxpaint('/nonexistent/tuxpaint'), (e: unknown) => e instanceof TuxpaintMissingError && /fetch-tuxpaint\.sh/.test(e.message));
});

test('Tux Paint stamps: captioned real pictures', { skip: noTux }, () => {
  const scan = scanTuxpaint();
  assert.ok(scan.items.length > 700, `only ${scan.items.length} captioned stamps`);
  assert.ok(scan.skipped.length < scan.items.length * 0.05, `${scan.skipped.length} skipped`);
  for (const it of scan.items) {
    assert.ok(it.caption.length > 0 && !/\.utf8=/.test(it.caption), `caption of ${it.path}: ${it.caption}`);
    assert.ok(it.path.endsWith('.png'));
    assert.ok(!it.category.includes('\\'));
  }
  const bird = scan.items.find((i) => i.category.startsWith('animals/birds'));
  assert.ok(bird, 'expected some bird stamps');
  const img = loadImage(bird.path);
  assert.ok(img.width > 16 && img.height > 16);
  let lo = 255, hi = 0;
  for (const v of img.data) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  assert.ok(hi - lo > 100, `picture ${bird.path} looks flat (${lo}..${hi})`);
});

test('fortune and WordNet parsers', () => {
  const f = parseFortuneFile('First quip.\n%\nSecond\n  quip with _\bu_\bn_\bd_\be_\br line.\n%\n\n%\nLast.\n');
  assert.deepEqual(f, ['First quip.', 'Second\n  quip with under line.', 'Last.']);
  const wn = parseWordnetData(
    '  1 This software and database is being provided\n' +
      '00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived to exist  \n' +
      '00002098 00 s 02 ablaze(p) 0 on_fire 0 001 & 00001740 a 0000 | keenly excited; "ablaze with ideas"\n',
    'data.test',
  );
  assert.deepEqual(wn, ['entity: that which is perceived to exist', 'ablaze, on fire: keenly excited; "ablaze with ideas"']);
  assert.throws(() => parseWordnetData('00001740 03 n 01 entity 0 000 no gloss\n', 'data.bad'), /data\.bad:1/);
  assert.throws(() => loadTextCorpus({ sources: ['wordnet'], wordnetDir: '/nonexistent' }), (e: unknown) => e instanceof CorpusUnavailableError && /apt-get install wordnet-base/.test(e.message));
  assert.throws(() => loadTextCorpus({ sources: ['fortunes'], fortunesDir: '/nonexistent' }), /apt-get install fortunes-min/);
});

test('fortunes corpus from the installed Debian package', { skip: noFortunes }, () => {
  const docs = loadTextCorpus({ sources: ['fortunes'] });
  assert.ok(docs.length > 400, `only ${docs.length} fortunes`);
  assert.ok(docs.every((d) => d.length > 0 && !/^%$/m.test(d) && !d.includes('\b')));
});

test('WordNet glosses from wordnet-base', { skip: noWordnet }, () => {
  const docs = loadTextCorpus({ sources: ['wordnet'] });
  assert.ok(docs.length > 100000, `only ${docs.length} synsets`); // WordNet 3.0 has 117 659
  assert.ok(docs.some((d) => d.startsWith('entity: that which is perceived or known')));
  assert.ok(docs.every((d) => /^[^:]+: \S/.test(d)));
});
