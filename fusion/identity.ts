// Signed identities for collaboration messages: a simple form of IEEE 1609.2.
//
// Kept from 1609.2: an authority the ego trusts signs each agent's certificate, which binds the
// agent's public key to its id, its agent type (1609.2's permissions, here what sets its fusion
// trust) and a validity period; every message is signed by its sender over the exact bytes sent,
// with a generation time; a message carries the sender's whole certificate or an 8-byte digest of
// one the receiver already holds (1609.2's HashedId8); revoked certificates are listed by digest.
// Left out: certificate chains (one authority signs agents directly), pseudonym certificates and
// their rotation (so a sender is linkable across messages: no privacy), geographic validity
// regions, PSID/SSP permission encoding, signed and distributed revocation lists (the ego reads a
// local list), asking a peer for an unknown certificate, encryption, and ECDSA (Ed25519 instead,
// which node:crypto has without a dependency).
//
// Everything here checks bytes before it believes them: the ego verifies the certificate and the
// signature before the CollabMessage inside is parsed at all (fusion/gate.ts).

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { DataError, readFileChecked, writeFileAtomic } from '../datasets/io.ts';
import { DEFAULT_LIMITS, MessageError } from './messages.ts';

/**
 * Why the ego turned a message away: one name per check, counted per frame (FrameResult.rejected).
 * 'invalid' is a message whose contents fail decodeMessage's checks.
 */
export const REJECT_CODES = [
  'malformed-envelope',
  'unknown-certificate',
  'untrusted-issuer',
  'bad-certificate',
  'expired-certificate',
  'revoked-certificate',
  'bad-signature',
  'stale-timestamp',
  'identity-mismatch',
  'claims-ego',
  'duplicate-sender',
  'replayed-sequence',
  'out-of-range',
  'space-mismatch',
  'invalid',
] as const;
export type RejectCode = (typeof REJECT_CODES)[number];

/** A message the ego turned away, with the check that failed (`code`) and the field. */
export class Rejected extends MessageError {
  constructor(
    readonly code: RejectCode,
    field: string,
    reason: string,
    value?: unknown,
  ) {
    super(field, reason, value);
    this.name = 'Rejected';
  }
}

const CERT_CONTEXT = Buffer.from('heal-cert-v1\0');
const MSG_CONTEXT = Buffer.from('heal-msg-v1\0');
const CERT_VERSION = 1;
/** Largest accepted encoded certificate: id, type, key, times, issuer and a signature fit in far less. */
const MAX_CERT_BYTES = 1024;

interface IdentitySchema {
  body: protobuf.Type;
  cert: protobuf.Type;
  signed: protobuf.Type;
}
let schema: IdentitySchema | undefined;
function loadSchema(): IdentitySchema {
  if (!schema) {
    const root = protobuf.loadSync(fileURLToPath(new URL('../proto/heal.proto', import.meta.url)));
    schema = { body: root.lookupType('heal.CertificateBody'), cert: root.lookupType('heal.Certificate'), signed: root.lookupType('heal.SignedCollabMessage') };
  }
  return schema;
}

/** First 8 bytes of SHA-256: how certificates and authorities are named on the wire. */
export function digest8(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest().subarray(0, 8);
}

export function rawPublicKey(key: KeyObject): Buffer {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new Error('not an Ed25519 key');
  return Buffer.from(jwk.x, 'base64url');
}

function publicKeyFromRaw(raw: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(raw).toString('base64url') }, format: 'jwk' });
}

const toNum = (v: number | { toNumber(): number } | null | undefined): number => (typeof v === 'number' ? v : v ? v.toNumber() : 0);

// ---------------------------------------------------------------------------------------------
// Authority and certificates

/** A deployment authority: its key signs agents' certificates. The ego needs only the public half. */
export interface Authority {
  publicKey: KeyObject;
  /** digest8 of the raw public key: the `issuer` of the certificates it signs. */
  id: Buffer;
  privateKey?: KeyObject;
}

export function authorityFromKeys(publicKey: KeyObject, privateKey?: KeyObject): Authority {
  return { publicKey, privateKey, id: digest8(rawPublicKey(publicKey)) };
}

export function createAuthority(): Authority {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return authorityFromKeys(publicKey, privateKey);
}

export interface CertificateFields {
  agentId: string;
  agentType: string;
  /** Raw 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
  notBeforeMs: number;
  notAfterMs: number;
}

export interface Certificate extends CertificateFields {
  issuer: Buffer;
  /** The encoded Certificate, as it travels. */
  bytes: Uint8Array;
  /** digest8(bytes). */
  digest: Buffer;
}

/** Signs a certificate for `fields` with the authority's private key; returns the encoded Certificate. */
export function issueCertificate(authority: Authority, fields: CertificateFields): Uint8Array {
  if (!authority.privateKey) throw new Error('this authority has only its public key: it cannot issue certificates');
  if (!(fields.notAfterMs >= fields.notBeforeMs)) throw new Error(`certificate validity ends (${fields.notAfterMs}) before it starts (${fields.notBeforeMs})`);
  const s = loadSchema();
  const body = s.body
    .encode(
      s.body.fromObject({
        version: CERT_VERSION,
        agentId: fields.agentId,
        agentType: fields.agentType,
        publicKey: fields.publicKey,
        notBeforeMs: fields.notBeforeMs,
        notAfterMs: fields.notAfterMs,
        issuer: authority.id,
      }),
    )
    .finish();
  const signature = sign(null, Buffer.concat([CERT_CONTEXT, body]), authority.privateKey);
  return s.cert.encode(s.cert.fromObject({ body, signature })).finish();
}

/** Parses an encoded Certificate, without checking who signed it. */
export function parseCertificate(bytes: Uint8Array): Certificate & { body: Uint8Array; signature: Uint8Array } {
  if (bytes.length > MAX_CERT_BYTES) throw new Rejected('bad-certificate', 'certificate', `is ${bytes.length} bytes, over ${MAX_CERT_BYTES}`);
  const s = loadSchema();
  let body: Uint8Array, signature: Uint8Array;
  let b: Record<string, unknown>;
  try {
    const c = s.cert.decode(bytes) as unknown as { body: Uint8Array; signature: Uint8Array };
    body = c.body ?? new Uint8Array(0);
    signature = c.signature ?? new Uint8Array(0);
    b = s.body.decode(body) as unknown as Record<string, unknown>;
  } catch (err) {
    throw new Rejected('bad-certificate', 'certificate', `cannot be parsed: ${(err as Error).message}`);
  }
  if (b.version !== CERT_VERSION) throw new Rejected('bad-certificate', 'certificate.version', `unsupported (this reader knows ${CERT_VERSION})`, b.version);
  const publicKey = (b.publicKey as Uint8Array | undefined) ?? new Uint8Array(0);
  if (publicKey.length !== 32) throw new Rejected('bad-certificate', 'certificate.publicKey', `must be 32 bytes, has ${publicKey.length}`);
  const issuer = Buffer.from((b.issuer as Uint8Array | undefined) ?? []);
  if (issuer.length !== 8) throw new Rejected('bad-certificate', 'certificate.issuer', `must be 8 bytes, has ${issuer.length}`);
  if (signature.length !== 64) throw new Rejected('bad-certificate', 'certificate.signature', `must be 64 bytes, has ${signature.length}`);
  const agentId = String(b.agentId ?? '');
  const agentType = String(b.agentType ?? '');
  if (!agentId || !agentType) throw new Rejected('bad-certificate', 'certificate.agentId', 'agent id and type must be set');
  return {
    agentId,
    agentType,
    publicKey,
    notBeforeMs: toNum(b.notBeforeMs as number),
    notAfterMs: toNum(b.notAfterMs as number),
    issuer,
    bytes,
    digest: digest8(bytes),
    body,
    signature,
  };
}

// ---------------------------------------------------------------------------------------------
// Agents

/** What a sender holds: its private key and the certificate the authority gave it. */
export interface AgentIdentity {
  privateKey: KeyObject;
  certificate: Certificate;
}

export function identityFrom(privateKey: KeyObject, certificateBytes: Uint8Array): AgentIdentity {
  const certificate = parseCertificate(certificateBytes);
  if (!rawPublicKey(createPublicKey(privateKey)).equals(Buffer.from(certificate.publicKey))) {
    throw new Error(`agent ${certificate.agentId}: the private key does not match the certificate's public key`);
  }
  return { privateKey, certificate };
}

/** A new key pair for an agent and its certificate from `authority`. */
export function issueIdentity(authority: Authority, agentId: string, agentType: string, notBeforeMs: number, notAfterMs: number): AgentIdentity {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return identityFrom(privateKey, issueCertificate(authority, { agentId, agentType, publicKey: rawPublicKey(publicKey), notBeforeMs, notAfterMs }));
}

// What a sender signs: the context, the time and the SHA-256 of the payload. Hashing first, as
// 1609.2 does, makes Ed25519's own work constant: over a 512 KiB payload, pure Ed25519 hashes it
// twice with SHA-512 to sign (and once to verify), after copying it behind the prefix.
function messageSigningInput(payload: Uint8Array, generationTimeMs: number): Buffer {
  const t = Buffer.alloc(8);
  t.writeBigUInt64BE(BigInt(generationTimeMs));
  return Buffer.concat([MSG_CONTEXT, t, createHash('sha256').update(payload).digest()]);
}

/**
 * Wraps an encoded CollabMessage in a SignedCollabMessage: the sender's signature over the time and
 * the bytes, and its whole certificate, or its digest when `digestOnly` (the ego already has it).
 */
export function signMessage(identity: AgentIdentity, payload: Uint8Array, generationTimeMs: number, digestOnly = false): Uint8Array {
  const signature = sign(null, messageSigningInput(payload, generationTimeMs), identity.privateKey);
  const s = loadSchema();
  const signer = digestOnly ? { certificateDigest: identity.certificate.digest } : { certificate: s.cert.decode(identity.certificate.bytes) };
  return s.signed.encode(s.signed.fromObject({ payload, generationTimeMs, ...signer, signature })).finish();
}

// ---------------------------------------------------------------------------------------------
// The ego's side

export interface VerifierOptions {
  /** The authorities whose certificates the ego accepts. */
  authorities: Authority[];
  /** digest8 of revoked certificates. */
  revoked?: Iterable<Uint8Array>;
}

export interface Verified {
  payload: Uint8Array;
  certificate: Certificate;
  generationTimeMs: number;
}

/**
 * Checks SignedCollabMessages against trusted authorities: certificate (issuer, signature,
 * validity, revocation), then the sender's signature. Keeps the certificates it verified, so that
 * later messages may carry only a digest, and their public keys.
 */
export class Verifier {
  private readonly authorities = new Map<string, KeyObject>();
  private readonly revoked = new Set<string>();
  private readonly known = new Map<string, { cert: Certificate; key: KeyObject }>();

  constructor(opts: VerifierOptions) {
    for (const a of opts.authorities) this.authorities.set(a.id.toString('hex'), a.publicKey);
    for (const d of opts.revoked ?? []) this.revoked.add(Buffer.from(d).toString('hex'));
  }

  revoke(digest: Uint8Array): void {
    const hex = Buffer.from(digest).toString('hex');
    this.revoked.add(hex);
    this.known.delete(hex);
  }

  /**
   * Takes a certificate handed over beforehand (heal eval's pre-distributed certificates), with the
   * checks a certificate in a message gets; throws Rejected. Later messages may then carry its digest.
   */
  learn(certificateBytes: Uint8Array, nowMs: number): void {
    this.certificate(certificateBytes, nowMs);
  }

  /** Verifies `bytes` at time `nowMs`; throws Rejected. Parses nothing of the payload. */
  verify(bytes: Uint8Array, nowMs: number): Verified {
    // The payload is held to decodeMessage's cap later; the envelope adds a certificate and a signature.
    if (!(bytes instanceof Uint8Array) || bytes.length > DEFAULT_LIMITS.maxBytes + MAX_CERT_BYTES + 256) {
      throw new Rejected('malformed-envelope', 'signed', `is ${bytes?.length} bytes, over the message cap`);
    }
    const s = loadSchema();
    let env: {
      payload?: Uint8Array;
      generationTimeMs?: number | { toNumber(): number };
      signer?: string;
      certificate?: unknown;
      certificateDigest?: Uint8Array;
      signature?: Uint8Array;
    };
    try {
      env = s.signed.decode(bytes) as typeof env;
    } catch (err) {
      throw new Rejected('malformed-envelope', 'signed', `not a SignedCollabMessage: ${(err as Error).message}`);
    }
    const payload = env.payload ?? new Uint8Array(0);
    const signature = env.signature ?? new Uint8Array(0);
    if (!payload.length) throw new Rejected('malformed-envelope', 'signed.payload', 'is empty');
    if (signature.length !== 64) throw new Rejected('malformed-envelope', 'signed.signature', `must be 64 bytes, has ${signature.length}`);
    const generationTimeMs = toNum(env.generationTimeMs);
    let entry: { cert: Certificate; key: KeyObject } | undefined;
    if (env.signer === 'certificate') {
      const certBytes = s.cert.encode(env.certificate as protobuf.Message).finish();
      entry = this.certificate(certBytes, nowMs);
    } else if (env.signer === 'certificateDigest') {
      const d = Buffer.from(env.certificateDigest ?? []).toString('hex');
      if (this.revoked.has(d)) throw new Rejected('revoked-certificate', 'signed.certificateDigest', 'names a revoked certificate', d);
      entry = this.known.get(d);
      if (!entry) throw new Rejected('unknown-certificate', 'signed.certificateDigest', 'names a certificate this ego does not hold', d);
      this.checkValidity(entry.cert, nowMs);
    } else {
      throw new Rejected('malformed-envelope', 'signed.signer', 'carries neither a certificate nor its digest');
    }
    if (!verify(null, messageSigningInput(payload, generationTimeMs), entry.key, signature)) {
      throw new Rejected('bad-signature', 'signed.signature', `does not verify with agent ${entry.cert.agentId}'s certificate`);
    }
    return { payload, certificate: entry.cert, generationTimeMs };
  }

  private certificate(bytes: Uint8Array, nowMs: number): { cert: Certificate; key: KeyObject } {
    const digest = digest8(bytes).toString('hex');
    if (this.revoked.has(digest)) throw new Rejected('revoked-certificate', 'signed.certificate', 'is revoked', digest);
    const hit = this.known.get(digest);
    if (hit) {
      this.checkValidity(hit.cert, nowMs);
      return hit;
    }
    const cert = parseCertificate(bytes);
    const issuerKey = this.authorities.get(cert.issuer.toString('hex'));
    if (!issuerKey) throw new Rejected('untrusted-issuer', 'certificate.issuer', 'is not an authority this ego trusts', cert.issuer.toString('hex'));
    if (!verify(null, Buffer.concat([CERT_CONTEXT, cert.body]), issuerKey, cert.signature)) {
      throw new Rejected('bad-certificate', 'certificate.signature', `does not verify with authority ${cert.issuer.toString('hex')}`);
    }
    this.checkValidity(cert, nowMs);
    let key: KeyObject;
    try {
      key = publicKeyFromRaw(cert.publicKey);
    } catch (err) {
      throw new Rejected('bad-certificate', 'certificate.publicKey', `is not an Ed25519 key: ${(err as Error).message}`);
    }
    const entry = { cert, key };
    this.known.set(digest, entry);
    return entry;
  }

  private checkValidity(cert: Certificate, nowMs: number): void {
    if (nowMs < cert.notBeforeMs || nowMs > cert.notAfterMs) {
      throw new Rejected(
        'expired-certificate',
        'certificate.validity',
        `agent ${cert.agentId}'s certificate is valid ${new Date(cert.notBeforeMs).toISOString()} to ${new Date(cert.notAfterMs).toISOString()}`,
        new Date(nowMs).toISOString(),
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Key folders (`heal keys`)
//
// DIR/authority.pub   the authority's public key (PEM, SPKI): what an ego trusts
// DIR/authority.key   its private key (PEM, PKCS#8), only where certificates are issued
// DIR/agents/ID.key   an agent's private key (PEM, PKCS#8)
// DIR/agents/ID.cert  its Certificate (binary, as it travels)
// DIR/revoked.txt     digests of revoked certificates, hex, one a line

export const keyFiles = (dir: string) => ({
  authorityPub: path.join(dir, 'authority.pub'),
  authorityKey: path.join(dir, 'authority.key'),
  agents: path.join(dir, 'agents'),
  revoked: path.join(dir, 'revoked.txt'),
});

const exists = (p: string) =>
  fs.stat(p).then(
    () => true,
    () => false,
  );

/** Writes a new authority into `dir` (refuses to replace one). */
export async function initKeyFolder(dir: string): Promise<Authority> {
  const f = keyFiles(dir);
  if (await exists(f.authorityKey)) throw new DataError(f.authorityKey, undefined, 'an authority already exists here; remove the folder to start over');
  await fs.mkdir(f.agents, { recursive: true });
  const a = createAuthority();
  await writeFileAtomic(f.authorityKey, a.privateKey!.export({ format: 'pem', type: 'pkcs8' }) as string);
  await fs.chmod(f.authorityKey, 0o600);
  await writeFileAtomic(f.authorityPub, a.publicKey.export({ format: 'pem', type: 'spki' }) as string);
  return a;
}

async function readAuthority(dir: string, withPrivate: boolean): Promise<Authority> {
  const f = keyFiles(dir);
  const pub = createPublicKey(Buffer.from(await readFileChecked(f.authorityPub, 'authority public key')));
  if (pub.asymmetricKeyType !== 'ed25519') throw new DataError(f.authorityPub, undefined, `must be an Ed25519 public key (is ${pub.asymmetricKeyType})`);
  const priv = withPrivate ? createPrivateKey(Buffer.from(await readFileChecked(f.authorityKey, 'authority private key'))) : undefined;
  return authorityFromKeys(pub, priv);
}

/** Issues agent `agentId` a key and a certificate, written to DIR/agents/. */
export async function issueToFolder(dir: string, agentId: string, agentType: string, notBeforeMs: number, notAfterMs: number): Promise<AgentIdentity> {
  if (!/^[A-Za-z0-9_.-]{1,128}$/.test(agentId)) throw new DataError(dir, 'agent id', 'must be 1-128 letters, digits, _ . -', agentId);
  const a = await readAuthority(dir, true);
  const id = issueIdentity(a, agentId, agentType, notBeforeMs, notAfterMs);
  const f = keyFiles(dir);
  await fs.mkdir(f.agents, { recursive: true });
  await writeFileAtomic(path.join(f.agents, `${agentId}.key`), id.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
  await fs.chmod(path.join(f.agents, `${agentId}.key`), 0o600);
  await writeFileAtomic(path.join(f.agents, `${agentId}.cert`), id.certificate.bytes);
  return id;
}

/** Adds agent `agentId`'s certificate to DIR/revoked.txt; returns its digest. */
export async function revokeInFolder(dir: string, agentId: string): Promise<string> {
  const f = keyFiles(dir);
  const cert = parseCertificate(await readFileChecked(path.join(f.agents, `${agentId}.cert`), 'agent certificate'));
  const d = cert.digest.toString('hex');
  const have = (await exists(f.revoked)) ? (await fs.readFile(f.revoked, 'utf8')).split('\n').filter(Boolean) : [];
  if (!have.includes(d)) await writeFileAtomic(f.revoked, [...have, d].join('\n') + '\n');
  return d;
}

/** What a run uses from a key folder: the identities found in it, and a verifier trusting its authority. */
export async function readKeyFolder(dir: string): Promise<{ identities: Map<string, AgentIdentity>; verifier: Verifier; authority: Authority }> {
  const f = keyFiles(dir);
  const authority = await readAuthority(dir, false);
  const identities = new Map<string, AgentIdentity>();
  const names = (await exists(f.agents)) ? await fs.readdir(f.agents) : [];
  for (const n of names.filter((n) => n.endsWith('.cert')).sort()) {
    const id = n.slice(0, -'.cert'.length);
    const keyFile = path.join(f.agents, `${id}.key`);
    if (!(await exists(keyFile))) continue; // a peer's certificate alone: nothing to sign with
    const certFile = path.join(f.agents, n);
    try {
      identities.set(
        id,
        identityFrom(createPrivateKey(Buffer.from(await readFileChecked(keyFile, 'agent key'))), await readFileChecked(certFile, 'agent certificate')),
      );
    } catch (err) {
      throw new DataError(certFile, undefined, (err as Error).message);
    }
  }
  const revoked: Uint8Array[] = [];
  if (await exists(f.revoked)) {
    for (const [i, line] of (await fs.readFile(f.revoked, 'utf8')).split('\n').entries()) {
      const t = line.trim();
      if (!t) continue;
      if (!/^[0-9a-f]{16}$/.test(t)) throw new DataError(f.revoked, `line ${i + 1}`, 'must be a 16-hex-digit certificate digest', t);
      revoked.push(Buffer.from(t, 'hex'));
    }
  }
  return { identities, verifier: new Verifier({ authorities: [authority], revoked }), authority };
}

// ---------------------------------------------------------------------------------------------
// What a run signs and verifies with

/** The keys of a simulated deployment: every sender's identity, and the ego's verifier. */
export interface Security {
  /** The identity agent `agentId` signs with as type `agentType`; undefined when it holds no key. */
  identity(agentId: string, agentType: string): AgentIdentity | undefined;
  verifier: Verifier;
  /** Where the keys come from, for logs and run records. */
  source: string;
}

const DAY_MS = 24 * 3600 * 1000;

/**
 * An authority made in memory for one run, which certifies every agent when it first sends (for
 * its id and the type it sends as), valid from a minute ago for a day.
 */
export function ephemeralSecurity(): Security {
  const authority = createAuthority();
  const issued = new Map<string, AgentIdentity>();
  return {
    identity(agentId, agentType) {
      const key = `${agentId}\u0000${agentType}`;
      let id = issued.get(key);
      if (!id) {
        const now = Date.now();
        id = issueIdentity(authority, agentId, agentType, now - 60_000, now + DAY_MS);
        issued.set(key, id);
      }
      return id;
    },
    verifier: new Verifier({ authorities: [authority] }),
    source: 'ephemeral authority',
  };
}

/** The identities and the authority of a `heal keys` folder; agents without a key there cannot sign. */
export async function keyFolderSecurity(dir: string): Promise<Security> {
  const { identities, verifier, authority } = await readKeyFolder(dir);
  return {
    identity: (agentId) => identities.get(agentId),
    verifier,
    source: `${path.resolve(dir)} (authority ${authority.id.toString('hex')}, ${identities.size} agent key(s))`,
  };
}
