import { expect } from 'chai';
import { flagsFor, parseComponentVersion } from './component-flags.js';
import { sharedControlPlane } from './shared.js';

const APISERVER = ['--secure-port=6443', '--insecure-port=0', '--v=1'];
const CONTROLLER_MANAGER = [
  '--leader-elect=false',
  '--port=0',
  '--secure-port=10257',
  '--node-monitor-grace-period=87600h',
  '--pod-eviction-timeout=87600h',
  '--v=1',
];
const SCHEDULER = ['--leader-elect=false', '--port=0', '--secure-port=10259', '--v=1'];

describe('control plane: the flags each Kubernetes version gets', () => {
  it('reads the version a component binary prints', () => {
    expect(parseComponentVersion('Kubernetes v1.20.2\n')).to.deep.equal({ major: 1, minor: 20, gitVersion: 'v1.20.2' });
    expect(parseComponentVersion('Kubernetes v1.30.0-rc.1')).to.deep.equal({ major: 1, minor: 30, gitVersion: 'v1.30.0-rc.1' });
    expect(parseComponentVersion('v1.24.17')).to.include({ major: 1, minor: 24 });
    expect(() => parseComponentVersion('etcd Version: unknown')).to.throw(/cannot read a Kubernetes version.*Kubernetes v1\.20\.2/);
  });

  it('gives 1.20 every flag the harness writes (the insecure ports off, eviction pushed out)', () => {
    const v = parseComponentVersion('Kubernetes v1.20.2');
    expect(flagsFor('kube-apiserver', v, APISERVER)).to.deep.equal(APISERVER);
    expect(flagsFor('kube-controller-manager', v, CONTROLLER_MANAGER)).to.deep.equal(CONTROLLER_MANAGER);
    expect(flagsFor('kube-scheduler', v, SCHEDULER)).to.deep.equal(SCHEDULER);
  });

  it('drops --insecure-port and --port from 1.24 on, keeps --pod-eviction-timeout until 1.27', () => {
    const v = parseComponentVersion('Kubernetes v1.24.17');
    expect(flagsFor('kube-apiserver', v, APISERVER)).to.deep.equal(['--secure-port=6443', '--v=1']);
    expect(flagsFor('kube-controller-manager', v, CONTROLLER_MANAGER)).to.deep.equal([
      '--leader-elect=false',
      '--secure-port=10257',
      '--node-monitor-grace-period=87600h',
      '--pod-eviction-timeout=87600h',
      '--v=1',
    ]);
    expect(flagsFor('kube-scheduler', v, SCHEDULER)).to.deep.equal(['--leader-elect=false', '--secure-port=10259', '--v=1']);
    const just = parseComponentVersion('v1.26.15');
    expect(flagsFor('kube-controller-manager', just, CONTROLLER_MANAGER)).to.include('--pod-eviction-timeout=87600h');
  });

  it('gives 1.30 none of the removed flags', () => {
    const v = parseComponentVersion('Kubernetes v1.30.2');
    expect(flagsFor('kube-apiserver', v, APISERVER)).to.deep.equal(['--secure-port=6443', '--v=1']);
    expect(flagsFor('kube-controller-manager', v, CONTROLLER_MANAGER)).to.deep.equal([
      '--leader-elect=false',
      '--secure-port=10257',
      '--node-monitor-grace-period=87600h',
      '--v=1',
    ]);
    expect(flagsFor('kube-scheduler', v, SCHEDULER)).to.deep.equal(['--leader-elect=false', '--secure-port=10259', '--v=1']);
  });

  it('reads the version from the real binaries, and the server it started says the same', async function () {
    this.timeout(240_000);
    const cp = await sharedControlPlane();
    const served = await cp.request('GET', '/version');
    expect(served.status).to.equal(200);
    expect(cp.componentVersion('kube-apiserver').gitVersion).to.equal(served.json.gitVersion);
    for (const name of ['kube-controller-manager', 'kube-scheduler'] as const)
      expect(cp.componentVersion(name).gitVersion, name).to.equal(served.json.gitVersion);
  });
});
