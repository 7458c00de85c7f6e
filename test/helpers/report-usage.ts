/**
 * Preloaded into child processes by child-usage.ts (`--import`): at exit, writes the process's own peak resident
 * set size and CPU time to the file named by FLAMINGO_TEST_USAGE_FILE, so a test can bound what a command costs.
 */
import { writeFileSync } from 'node:fs';

const out = process.env.FLAMINGO_TEST_USAGE_FILE;
if (out) {
  process.on('exit', () => {
    const u = process.resourceUsage();
    writeFileSync(out, JSON.stringify({ maxRssKiB: u.maxRSS, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000 }));
  });
}
