import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parse, stringify } from 'yaml';
import { crdsForServer, validateObject, withDefaults, type StoragePool } from '../../src/crds/index.js';
import type { ControlPlane } from '../cluster/control-plane.js';
import { sharedControlPlane } from '../cluster/shared.js';
import { waitFor } from '../support/cluster.js';
import { serverBehaviour } from '../support/server-behaviour.js';
import { minimalPool } from './fixtures.js';

const SAMPLES_DIR = fileURLToPath(new URL('../../../samples/', import.meta.url));

/**
 * The CRDs on a real API server (the test control plane's: 1.20 in CI, or KUBEBUILDER_ASSETS'): accepted as structural,
 * defaults applied, and the server's own validation agreeing with ours on field paths. Objects are
 * only sent with --dry-run=server, so nothing is left behind but the (idempotent) CRDs.
 */
describe('CRDs on the real control plane', function () {
  this.timeout(180_000);
  let cp: ControlPlane;

  /** Creates `obj` in dry-run mode; returns the object as the server would store it, or its error. */
  async function dryRun(obj: unknown): Promise<{ stored?: any; error?: string }> {
    const r = await cp.kubectl(['create', '--dry-run=server', '--validate=false', '-o', 'json', '-f', '-'], { input: JSON.stringify(obj) });
    return r.code === 0 ? { stored: JSON.parse(r.stdout) } : { error: r.stderr };
  }

  before(async () => {
    cp = await sharedControlPlane();
    const version = JSON.parse((await cp.kubectl(['version', '-o', 'json'])).stdout).serverVersion;
    const manifests = crdsForServer(version)
      .map((crd) => stringify(crd))
      .join('---\n');
    const applied = await cp.kubectl(['apply', '--server-side', '--field-manager=stowage-tests', '-f', '-'], { input: manifests });
    expect(applied.code, applied.stderr).to.equal(0);
    const established = await cp.kubectl([
      'wait',
      '--for=condition=established',
      '--timeout=60s',
      'crd/storagepools.stowage.dev',
      'crd/nodedisks.stowage.dev',
    ]);
    expect(established.code, established.stderr).to.equal(0);
    // Discovery (and so kubectl) may lag the Established condition by a moment.
    await waitFor('StoragePool discovery', async () => (await dryRun(minimalPool())).stored);
  });

  it('store every sample with the schema defaults our withDefaults applies', async () => {
    for (const file of (await readdir(SAMPLES_DIR)).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')) {
      const sample = parse(await readFile(join(SAMPLES_DIR, file), 'utf8')) as StoragePool;
      const { stored, error } = await dryRun(sample);
      expect(error, file).to.equal(undefined);
      expect(validateObject(stored), file).to.deep.equal([]);
      expect(stored.spec.replicated.size, file).to.be.a('number');
      expect(stored.spec.storageClass.volumeBindingMode, file).to.equal('WaitForFirstConsumer');
      expect(withDefaults(stored).spec, file).to.deep.equal(withDefaults(sample).spec);
    }
  });

  it('reject what our validator rejects, at the same field paths', async () => {
    const bad = minimalPool() as any;
    bad.spec.mode = 'Lokal';
    bad.spec.disks.minSize = '-1Gi';
    bad.spec.replicated = { size: 4 };
    const { error } = await dryRun(bad);
    const ours = validateObject(bad).map((p) => p.path);
    expect(ours).to.have.members(['spec.mode', 'spec.disks.minSize', 'spec.replicated.size']);
    for (const path of ours) expect(error, path).to.contain(`${path}:`);
  });

  it('store host and zone pools with their defaults, and refuse unknown failure domains and minSize out of range at our paths', async () => {
    for (const failureDomain of ['host', 'zone']) {
      const across = minimalPool() as any;
      across.spec.replicated = { size: 3, failureDomain };
      const { stored, error } = await dryRun(across);
      expect(error, failureDomain).to.equal(undefined);
      expect(stored.spec.replicated, failureDomain).to.deep.equal({ size: 3, failureDomain });
      // minSize has no schema default (it depends on size): withDefaults gives Ceph's size - 1.
      expect(withDefaults(stored).spec.replicated.minSize, failureDomain).to.equal(2);
      expect(validateObject(stored), failureDomain).to.deep.equal([]);
    }
    const bad = minimalPool() as any;
    bad.spec.replicated = { size: 2, failureDomain: 'rack', minSize: 0 };
    const { error } = await dryRun(bad);
    // minSize 0 is out of bounds and, for an unknown domain, not the disk pools' 1 either: one path, two problems.
    const ours = [...new Set(validateObject(bad).map((p) => p.path))];
    expect(ours).to.have.members(['spec.replicated.failureDomain', 'spec.replicated.minSize']);
    for (const path of ours) expect(error, path).to.contain(`${path}:`);
  });

  it('check cross-field rules at admission where the server runs CEL, and leave them to the operator where it does not', async () => {
    const server = serverBehaviour(JSON.parse((await cp.kubectl(['version', '-o', 'json'])).stdout).serverVersion);
    const local = minimalPool() as any;
    local.spec.mode = 'Local';
    local.spec.replicated = { size: 2 };
    expect(validateObject(local).map((p) => p.path)).to.deep.equal(['spec.replicated.size']);
    const { error } = await dryRun(local);
    if (server.celAtAdmission)
      expect(error, `${server.gitVersion} runs the CRD's CEL rules`)
        .to.contain('spec.replicated.size')
        .and.contain('set replicated.size to 1');
    else expect(error, `${server.gitVersion} has no CEL at admission`).to.equal(undefined);
    // The same for the failure-domain rules: a size-1 host pool is refused where CEL runs, stored
    // otherwise and refused by the operator's own check.
    const single = minimalPool() as any;
    single.spec.replicated = { size: 1, failureDomain: 'host' };
    expect(validateObject(single).map((p) => p.path)).to.deep.equal(['spec.replicated.size']);
    const singleResult = await dryRun(single);
    if (server.celAtAdmission)
      expect(singleResult.error, `${server.gitVersion} runs the CRD's CEL rules`).to.contain('spec.replicated.size');
    else expect(singleResult.error, `${server.gitVersion} has no CEL at admission`).to.equal(undefined);
  });

  it('are documented field by field for kubectl explain', async () => {
    const explained = await cp.kubectl(['explain', 'storagepool.spec', '--recursive']);
    expect(explained.code, explained.stderr).to.equal(0);
    for (const field of ['mode', 'disks', 'selector', 'replicated', 'storageClass', 'reclaimPolicy', 'capacity', 'lowWatermarkPercent']) {
      expect(explained.stdout, field).to.match(new RegExp(`\\b${field}\\b`));
    }
    // Every field has a description: explain of a leaf prints it, never "<empty>".
    const domain = await waitFor('explain storagepool.spec.replicated.failureDomain', async () => {
      const r = await cp.kubectl(['explain', 'storagepool.spec.replicated.failureDomain']);
      return r.code === 0 ? r : undefined;
    });
    const text = domain.stdout.replace(/\s+/g, ' ');
    for (const phrase of [
      'disk (default): on different disks of the same node',
      'host: on different nodes',
      'topology.kubernetes.io/zone',
      'ReplicationSatisfiable=False',
      'CephEngineNotDeployed',
    ]) {
      expect(text, phrase).to.contain(phrase);
    }
    for (const leaf of [
      'storagepool.spec.replicated.size',
      'storagepool.spec.replicated.minSize',
      'storagepool.spec.local.cleanup',
      'nodedisk.spec.schedulable',
      'nodedisk.status.health',
    ]) {
      // The API server publishes a new CRD's OpenAPI a moment after it is established.
      const one = await waitFor(`explain ${leaf}`, async () => {
        const r = await cp.kubectl(['explain', leaf]);
        return r.code === 0 ? r : undefined;
      });
      expect(one.code, one.stderr).to.equal(0);
      expect(one.stdout, leaf).to.match(/DESCRIPTION:\n\s+\S/);
      expect(one.stdout, leaf).to.not.contain('<empty>');
    }
  });

  it('show the promised printer columns', async () => {
    const pool = minimalPool();
    pool.metadata.name = `columns-${Date.now()}`;
    const created = await cp.kubectl(['create', '-f', '-'], { input: JSON.stringify(pool) });
    expect(created.code, created.stderr).to.equal(0);
    try {
      const table = await cp.kubectl(['get', 'storagepool', pool.metadata.name]);
      expect(table.stdout.split('\n')[0]).to.match(/^NAME\s+MODE\s+REPLICAS\s+READY\s+USABLE\s+AVAILABLE\s+AGE$/);
      expect(table.stdout.split('\n')[1]).to.match(new RegExp(`^${pool.metadata.name}\\s+${pool.spec.mode}\\s+1\\s`));
    } finally {
      await cp.kubectl(['delete', 'storagepool', pool.metadata.name]);
    }
  });

  it('reject unknown fields with a message naming the field (kubectl; the server itself prunes them before 1.25 and rejects them from 1.25 on)', async () => {
    const pool = minimalPool() as any;
    pool.spec.replicas = 3;
    const r = await cp.kubectl(['create', '--dry-run=server', '-f', '-'], { input: JSON.stringify(pool) });
    expect(r.code).to.not.equal(0);
    // kubectl before 1.25 validates on the client ("replicas"); later ones ask the server ("spec.replicas").
    expect(r.stderr).to.match(/unknown field "(spec\.)?replicas"/);
    expect(validateObject(pool).map((p) => p.path)).to.deep.equal(['spec.replicas']);

    // The server on its own, asked for strict validation: what it does depends on its version.
    const server = serverBehaviour((await cp.request('GET', '/version')).json);
    const direct = await cp.request('POST', '/apis/stowage.dev/v1alpha1/storagepools?dryRun=All&fieldValidation=Strict', pool);
    if (server.strictFieldValidation) {
      expect(direct.status, direct.body).to.be.oneOf([400, 422]);
      expect(direct.json?.message, direct.body).to.contain('unknown field "spec.replicas"');
    } else {
      expect(direct.status, direct.body).to.equal(201);
      expect(direct.json.spec, `${server.gitVersion} prunes unknown fields`).to.not.have.property('replicas');
    }
  });
});
