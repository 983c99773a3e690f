// `make push` (hack/push-image.sh, skopeo) into a real OCI registry on loopback (Debian's
// docker-registry, test/cluster/kubelet-registry.ts): the registry serves the archive's own digest
// under every tag pushed, bad input is refused with what to do, and the registry leaves nothing behind.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { isAlive } from '../cluster/host.js';
import { stowageImageArchive } from '../cluster/kubelet-images.js';
import { LoopbackRegistry } from '../cluster/kubelet-registry.js';

const exec = promisify(execFile);

describe('make push: the image into a loopback registry, digest kept', function () {
  this.timeout(300_000);
  let registry: LoopbackRegistry | undefined;
  const { archive, version } = stowageImageArchive();

  before(async function () {
    if (!existsSync(archive)) throw new Error(`${archive} missing: run \`make image\` (make test does) before this test`);
    registry = await LoopbackRegistry.start();
  });

  after(async () => {
    await registry?.stop();
  });

  it("pushes under each tag; the registry resolves every tag and the digest to the archive's own digest", async () => {
    const index = JSON.parse((await exec('tar', ['-xOf', archive, 'index.json'])).stdout);
    const digest: string = index.manifests[0].digest;
    const pushed = await registry!.push('stowage-dev', [version, 'edge']);
    expect(pushed.digest).to.equal(digest);
    expect(pushed.refs).to.deep.equal([`${registry!.host}/stowage-dev/stowage:${version}`, `${registry!.host}/stowage-dev/stowage:edge`]);
    for (const reference of [version, 'edge', digest])
      expect(await registry!.resolve('stowage-dev/stowage', reference), reference).to.equal(digest);
    expect(await registry!.resolve('stowage-dev/stowage', 'no-such-tag')).to.equal(undefined);
    // skopeo reads it back as the image make image built.
    const inspect = JSON.parse(
      (await exec('skopeo', ['inspect', '--tls-verify=false', `docker://${registry!.host}/stowage-dev/stowage@${digest}`])).stdout,
    );
    expect(inspect.Labels['org.opencontainers.image.version']).to.equal(version);
  });

  it('refuses a REGISTRY that names the image, a bad tag, and no registry, saying what to pass', async () => {
    const push = (...vars: string[]) =>
      exec('make', ['--no-print-directory', '-s', 'push', 'PUSH_TLS_VERIFY=false', ...vars]).then(
        () => '',
        (e: any) => e.stderr as string,
      );
    expect(await push(`REGISTRY=${registry!.host}/stowage-dev/stowage`)).to.contain('names the image; give the host and path only');
    expect(await push(`REGISTRY=${registry!.host}/stowage-dev`, 'PUSH_TAGS=bad/tag')).to.contain('"bad/tag" is not a valid image tag');
    expect(await push('REGISTRY=')).to.contain('no registry: make push REGISTRY=');
    expect(await push('REGISTRY=stowage-dev')).to.contain('does not start with a registry host');
  });

  it('stop() ends the registry process and removes its storage', async () => {
    const pid = registry!.pid;
    await registry!.stop();
    expect(isAlive(pid)).to.equal(false);
    registry = undefined;
  });
});
