// `heal verify-reference DIR`: heal against tensors HEAL's PyTorch code computed, stage by stage
// (eval/reference.ts). DIR holds a HEAL checkpoint and case folders, each a dataset frame with
// expected.safetensors and expected.json (m1; ../shared/fixtures/heal_reference/README.md is one) or
// expected_m4.* (camera m4; ../shared/fixtures/heal_reference_cameras).

import { DEVICES } from '../models/runtime.ts';
import { formatChecks, verifyReference } from '../eval/reference.ts';
import { REFERENCE_SUITES } from '../eval/reference-suites.ts';
import { choice, choices, command, list, runCommand, string, dirs } from './args.ts';

const GROUPS = [...new Set(REFERENCE_SUITES.flatMap((s) => s.groups))];

export const VERIFY_REFERENCE = command({
  name: 'verify-reference',
  usage: 'DIR [options]',
  about: `Checks heal against HEAL's own tensors: DIR is a reference folder (a HEAL checkpoint and case
folders, each with a dataset frame, expected.safetensors and expected.json for HEAL's m1 or
expected_m4.safetensors and expected_m4.json for its m4 camera agent, as made by HEAL's PyTorch code)
or one case folder. Every stage the case holds (voxels or camera inputs and geometry, pillar features
or depth and splat, backbone, aligner, occupancy, fused levels, shrink, cls/reg/dir, boxes, the whole
detect path) is compared with its tolerance; prints one row per stage and exits with 1 when any is out of tolerance.`,
  positionals: { name: 'DIR', min: 1, max: 1 },
  options: {
    checkpoint: string({ arg: 'FILE', defaultText: 'the one each expected.json names', help: 'HEAL checkpoint (.pth)' }),
    case: list({ arg: 'NAMES', help: 'only these case folders' }),
    only: choices(GROUPS, { help: 'only these stage groups' }),
    device: choice(DEVICES, { arg: 'D', default: 'cpu', help: 'where the networks run (cpu: what the tolerances were set on)' }),
    'types-dir': dirs({ help: 'extra agent-type declarations (*.json)' }),
  },
});

export function run(args: string[]): Promise<number> {
  return runCommand(VERIFY_REFERENCE, args, async ({ values, positionals }) => {
    const t0 = performance.now();
    const result = await verifyReference(positionals[0], REFERENCE_SUITES, {
      checkpoint: values.checkpoint,
      cases: values.case,
      only: values.only,
      device: values.device,
      typesDirs: values['types-dir'],
      log: (line) => console.log(line),
    });
    console.log(`\n${formatChecks(result.checks)}\n`);
    for (const u of result.unchecked) console.log(`not compared (no stage reads them): ${u.case}/${u.file}: ${u.names.join(', ')}`);
    const failed = result.checks.filter((c) => !c.pass);
    const seconds = ((performance.now() - t0) / 1000).toFixed(1);
    console.log(
      failed.length
        ? `heal verify-reference: ${failed.length} of ${result.checks.length} stages out of tolerance (${seconds} s)`
        : `heal verify-reference: all ${result.checks.length} stages within tolerance, ${result.cases.length} case(s) (${seconds} s)`,
    );
    return failed.length ? 1 : 0;
  });
}
