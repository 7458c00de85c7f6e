/**
 * Video files through the system's ffmpeg: even frame sampling, formats, limits and clear errors,
 * media of mixed frame counts, `flamingo generate` and the MSRVTT-QA loader with video files.
 * The clips are made here with ffmpeg: grey frames whose level is 10 × the frame number.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from '../src/engine/index.ts';
import { Rng } from '../src/engine/rng.ts';
import { Flamingo } from '../src/model/flamingo.ts';
import type { FlamingoConfig } from '../src/model/config.ts';
import { encodeMediaItems } from '../src/model/media.ts';
import { decodeVideo, decodeVideoSync, findOnPath, probeVideoSync, VideoError } from '../src/data/ffmpeg.ts';
import { framesForModel, loadMedia } from '../src/data/video.ts';
import { encodePng, makeImage } from '../src/data/image.ts';
import { loadTaskData } from '../src/eval/data-args.ts';
import { main } from '../src/cli/main.ts';
import { capture } from './eval-helpers.ts';

// through the CLI's entry point, which turns errors into one line and an exit code
const generateCli = (a: string[]): Promise<number> => main(['generate', ...a]);

const HAVE_FFMPEG = findOnPath('ffmpeg') !== null && findOnPath('ffprobe') !== null;
const skip = HAVE_FFMPEG ? false : 'ffmpeg is not installed (scripts/setup.sh installs it)';

let dir = '';
const clip = (ext: string) => join(dir, `ramp.${ext}`);

/** 2 s at 10 fps, 32×24, grey level 10·N in frame N. */
function makeClip(out: string, extra: string[] = []): void {
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', "nullsrc=s=32x24:r=10:d=2,format=gray,geq=lum='N*10'", ...extra, out]);
  assert.equal(r.status, 0, String(r.stderr));
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'flamingo-video-'));
  if (!HAVE_FFMPEG) return;
  makeClip(clip('mp4'), ['-pix_fmt', 'yuv420p']);
  makeClip(clip('webm'));
  makeClip(clip('avi'), ['-c:v', 'mpeg4', '-q:v', '1']);
  makeClip(clip('gif'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Frame number shown by a decoded grey frame. */
const frameNo = (im: { data: Uint8Array }) => Math.round(im.data[0]! / 10);

describe('decoding', { skip }, () => {
  for (const ext of ['mp4', 'webm', 'avi', 'gif']) {
    test(`${ext}: F frames spread evenly over the clip, sync and streamed alike`, async () => {
      const info = probeVideoSync(clip(ext));
      assert.deepEqual([info.width, info.height], [32, 24]);
      assert.ok(Math.abs(info.duration - 2) < 0.11, `duration ${info.duration}`);
      for (const F of ext === 'mp4' ? [1, 4, 8] : [4]) {
        const frames = decodeVideoSync(clip(ext), { frames: F });
        assert.equal(frames.length, F);
        assert.ok(frames.every((f) => f.width === 32 && f.height === 24 && f.data.length === 32 * 24 * 3));
        const got = frames.map(frameNo);
        // frame k lies in the k-th of F equal parts of the 20 frames
        got.forEach((n, k) => assert.ok(n >= Math.floor((k * 20) / F) && n < Math.ceil(((k + 1) * 20) / F), `${ext} F=${F}: frames ${got}`));
        const streamed = await decodeVideo(clip(ext), { frames: F });
        assert.deepEqual(streamed.map((f) => Array.from(f.data)), frames.map((f) => Array.from(f.data)));
      }
    });
  }

  test('corrupt, empty, missing and non-video files: clear errors', async () => {
    const bad = join(dir, 'corrupt.mp4');
    writeFileSync(bad, Buffer.from('this is not a video at all, just some bytes'.repeat(20)));
    assert.throws(() => decodeVideoSync(bad, { frames: 2 }), (e: Error) => e instanceof VideoError && /corrupt\.mp4: is not a readable video/.test(e.message));
    await assert.rejects(decodeVideo(bad, { frames: 2 }), /is not a readable video/);
    const empty = join(dir, 'empty.webm');
    writeFileSync(empty, '');
    assert.throws(() => decodeVideoSync(empty, { frames: 2 }), /is empty/);
    assert.throws(() => decodeVideoSync(join(dir, 'nope.mp4'), { frames: 2 }), /does not exist/);
    const png = join(dir, 'still.png');
    writeFileSync(png, encodePng(makeImage(4, 4)));
    // A PNG is a one-frame "video" to ffprobe, without a duration: refused rather than guessed.
    assert.throws(() => decodeVideoSync(png, { frames: 2 }), /no known duration/);
    assert.throws(() => decodeVideoSync(clip('mp4'), { frames: 0 }), /positive integer/);
  });

  test('limits: bytes, pixels, duration, time; cancellation', async () => {
    assert.throws(() => decodeVideoSync(clip('mp4'), { frames: 2, maxBytes: 100 }), /more than the limit of 100/);
    assert.throws(() => decodeVideoSync(clip('mp4'), { frames: 2, maxPixels: 32 * 23 }), /32×24 exceed the limit/);
    assert.throws(() => decodeVideoSync(clip('mp4'), { frames: 2, maxSeconds: 1 }), /longer than the limit of 1 s/);
    await assert.rejects(decodeVideo(clip('mp4'), { frames: 2, maxPixels: 10 }), /exceed the limit/);
    // A time budget shorter than ffprobe + ffmpeg need: the process is killed, not waited for.
    await assert.rejects(decodeVideo(clip('webm'), { frames: 8, timeoutMs: 5 }), /did not finish within/);
    assert.throws(() => decodeVideoSync(clip('webm'), { frames: 8, timeoutMs: 5 }), /did not finish within 5 ms/);
    const ac = new AbortController();
    const p = decodeVideo(clip('webm'), { frames: 8, signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(p, /cancelled/);
  });
});

const TINY: FlamingoConfig = {
  vision: { image_size: 16, patch_size: 8, width: 16, layers: 1, heads: 2, mlp_ratio: 2, output_dim: 8, act: 'quick_gelu', ln_eps: 1e-5, ln_post_on_tokens: true },
  resampler: { dim: 16, depth: 1, dim_head: 8, heads: 2, num_latents: 4, max_num_media: null, max_num_frames: 4, ff_mult: 2, ln_eps: 1e-5 },
  xattn: { dim: 24, dim_visual: 16, dim_head: 8, heads: 2, ff_mult: 2, only_attend_immediate_media: true, ln_eps: 1e-5 },
  lm: { vocab_size: 40, hidden_size: 24, intermediate_size: 48, num_layers: 2, num_heads: 3, num_key_value_heads: 3, rms_norm_eps: 1e-6, rope_theta: 10000, tie_word_embeddings: false, max_position_embeddings: 64 },
  flamingo: { cross_attn_every_n_layers: 1, media_token_id: 38, eoc_token_id: 39, pad_token_id: 0 },
};

describe('media of different frame counts in one prompt', () => {
  const px = (rng: Rng) => { const a = new Float32Array(3 * 16 * 16); rng.fillNormal(a); return a; };

  test('an image (1 frame) and a video (3 frames) encode as each would alone', () => {
    const m = new Flamingo(TINY, 3);
    const rng = new Rng(5);
    const image = [px(rng)];
    const video = [px(rng), px(rng), px(rng)];
    const both = encodeMediaItems(m, [image, video]);
    assert.deepEqual(both.shape, [1, 2, 4, 16]);
    const alone = (frames: Float32Array[]) => m.encodeVision(new E.Tensor(Float32Array.from(frames.flatMap((f) => Array.from(f))), [1, 1, frames.length, 3, 16, 16])).f32;
    assert.deepEqual(Array.from(both.f32.subarray(0, 64)), Array.from(alone(image)));
    assert.deepEqual(Array.from(both.f32.subarray(64)), Array.from(alone(video)));
    // equal frame counts: one encodeVision call, same numbers
    const same = encodeMediaItems(m, [video, video]);
    assert.deepEqual(Array.from(same.f32.subarray(64)), Array.from(alone(video)));
  });

  test('too many frames, or mixed counts with media-position embeddings: clear errors', () => {
    const m = new Flamingo(TINY, 3);
    const rng = new Rng(6);
    assert.throws(() => encodeMediaItems(m, [Array.from({ length: 5 }, () => px(rng))]), /5 frames; the model takes at most 4/);
    const positional = new Flamingo({ ...TINY, resampler: { ...TINY.resampler, max_num_media: 4 } }, 3);
    assert.throws(() => encodeMediaItems(positional, [[px(rng)], [px(rng), px(rng)]]), /same frame count/);
    assert.equal(framesForModel(TINY.resampler), 4);
    assert.equal(framesForModel({ max_num_frames: null }), 8);
  });
});

describe('entry points', { skip }, () => {
  test('loadMedia: image file, video file, frame folder', () => {
    const png = join(dir, 'one.png');
    writeFileSync(png, encodePng(makeImage(5, 5, new Uint8Array(75).fill(7))));
    assert.equal(loadMedia(png, 4).length, 1);
    assert.deepEqual(loadMedia(clip('gif'), 3).map(frameNo).length, 3);
    const folder = join(dir, 'frames');
    mkdirSync(folder, { recursive: true });
    for (const i of [1, 2, 3, 4, 5, 6]) writeFileSync(join(folder, `f${i}.png`), encodePng(makeImage(2, 2, new Uint8Array(12).fill(i))));
    assert.deepEqual(loadMedia(folder, 3).map((f) => f.data[0]), [1, 3, 5]);
  });

  test('flamingo generate takes an image and a video in one prompt', async () => {
    const png = join(dir, 'shirt.png');
    writeFileSync(png, encodePng(makeImage(28, 28, new Uint8Array(28 * 28 * 3).fill(200))));
    const ok = await capture(generateCli, ['--model', 'models/flamingo-fmnist', '--prompt', '<image>Output:a shirt<|endofchunk|><image>Output:', '--images', `${png},${clip('mp4')}`, '--max-new-tokens', '4', '--num-beams', '1', '--json']);
    assert.equal(ok.code, 0, ok.stderr);
    const res = JSON.parse(ok.stdout) as { text: string; ids: number[] };
    assert.ok(res.ids.length >= 1 && res.ids.length <= 4);
    // A wrong count of markers is a usage error, not a crash.
    const bad = await capture(generateCli, ['--model', 'models/flamingo-fmnist', '--prompt', '<image>Output:', '--images', `${png},${clip('mp4')}`]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /1 <image> marker\(s\) but 2 image\/video file\(s\)/);
  });

  test('MSRVTT-QA reads video files (video7010.mp4) as well as frame folders', () => {
    const root = join(dir, 'msrvtt');
    mkdirSync(join(root, 'videos'), { recursive: true });
    makeClip(join(root, 'videos', 'video7010.mp4'), ['-pix_fmt', 'yuv420p']);
    makeClip(join(root, 'videos', 'video7011.webm'));
    writeFileSync(join(root, 'train_qa.json'), JSON.stringify([{ video_id: 7011, question: 'what is shown?', answer: 'grey', id: 1 }]));
    writeFileSync(join(root, 'test_qa.json'), JSON.stringify([{ video_id: 7010, question: 'what colour?', answer: 'grey', id: 2 }]));
    const d = loadTaskData('msrvtt_qa', [root], { frames: 3 });
    const q = d.query[0]!;
    assert.equal(q.media.files[0], join(root, 'videos', 'video7010.mp4'));
    const frames = q.media.load();
    assert.equal(frames.length, 3);
    assert.ok(frameNo(frames[0]!) < frameNo(frames[2]!));
    assert.equal(d.support[0]!.media.load().length, 3);
    // a missing video is named, or skipped with --skip-invalid
    writeFileSync(join(root, 'test_qa.json'), JSON.stringify([{ video_id: 7099, question: 'q', answer: 'a', id: 3 }, { video_id: 7010, question: 'q', answer: 'a', id: 4 }]));
    assert.throws(() => loadTaskData('msrvtt_qa', [root], { frames: 3 }), /video7099/);
    assert.equal(loadTaskData('msrvtt_qa', [root], { frames: 3, skipInvalid: true }).query.length, 1);
  });
});
