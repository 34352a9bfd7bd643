// `heal keys init|issue|revoke DIR`: a test authority and agent certificates in a folder
// (fusion/identity.ts keyFiles), and the --insecure / --keys options that heal eval and heal detect
// share.

import { ephemeralSecurity, initKeyFolder, issueToFolder, keyFolderSecurity, revokeInFolder, type Security } from '../fusion/identity.ts';
import type { EvalReport } from '../eval/contracts.ts';
import { UsageError, command, dir, flag, int, runCommand, string } from './args.ts';

export const SIGNING_OPTIONS = {
  insecure: flag({ help: 'send messages unsigned: the ego checks their contents but cannot tell who sent them' }),
  keys: dir({
    defaultText: 'an ephemeral authority that certifies every agent of the run',
    help: 'sign and verify with the keys of a `heal keys` folder (authority.pub, agents/ID.key + ID.cert, revoked.txt)',
  }),
};

/** The security a command runs with: --keys DIR, none with --insecure, else an ephemeral authority. */
export async function securityOf(values: { insecure: boolean; keys: string | undefined }): Promise<Security | undefined> {
  if (values.insecure) return undefined;
  return values.keys ? keyFolderSecurity(values.keys) : ephemeralSecurity();
}

export function formatSecurity(s: NonNullable<EvalReport['security']>): string {
  const rejected = Object.entries(s.rejected)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const cost = s.signed
    ? `sign ${s.signMsPerFrame.toFixed(2)} ms + verify ${s.verifyMsPerFrame.toFixed(2)} ms per frame (${(100 * s.shareOfFrame).toFixed(2)}% of its time)`
    : 'nothing signed';
  return `${cost}; rejected messages: ${rejected || 'none'}`;
}

export const KEYS = command({
  name: 'keys',
  usage: 'init|issue|revoke DIR [options]',
  about: `A test deployment authority and agent certificates (Ed25519, fusion/identity.ts) in DIR:
  init DIR                         a new authority: DIR/authority.key (keep it private), DIR/authority.pub
  issue DIR --id ID --type T       agent ID's key and certificate: DIR/agents/ID.key, DIR/agents/ID.cert
  revoke DIR --id ID               adds agent ID's certificate to DIR/revoked.txt
heal eval and heal detect use such a folder with --keys DIR.`,
  positionals: { name: 'ACTION DIR', min: 2, max: 2 },
  options: {
    id: string({ arg: 'ID', help: 'agent id (issue, revoke)' }),
    type: string({ arg: 'T', help: 'agent type the certificate binds (issue)' }),
    days: int({ min: 1, max: 3650, default: 30, help: 'validity from now (issue)' }),
  },
});

export function run(args: string[]): Promise<number> {
  return runCommand(KEYS, args, async ({ values, positionals: [action, dir] }) => {
    if (action === 'init') {
      const a = await initKeyFolder(dir);
      console.log(`authority ${a.id.toString('hex')} in ${dir}: trust ${dir}/authority.pub, keep ${dir}/authority.key private`);
      return 0;
    }
    if (action !== 'issue' && action !== 'revoke') throw new UsageError(`unknown action "${action}" (have: init, issue, revoke)`);
    if (!values.id) throw new UsageError(`${action} needs --id ID`);
    if (action === 'revoke') {
      const d = await revokeInFolder(dir, values.id);
      console.log(`revoked agent ${values.id}'s certificate ${d} (${dir}/revoked.txt)`);
      return 0;
    }
    if (!values.type) throw new UsageError('issue needs --type T');
    const now = Date.now();
    const id = await issueToFolder(dir, values.id, values.type, now, now + values.days * 24 * 3600 * 1000);
    console.log(
      `agent ${values.id} (${values.type}): certificate ${id.certificate.digest.toString('hex')}, valid until ${new Date(id.certificate.notAfterMs).toISOString()}`,
    );
    return 0;
  });
}
