import { expect } from 'chai';
import { parseBlkidExport, parseLsblk, parseMountinfo, parseWipefs, type RawDisk } from '../../src/node/agent/host-facts.js';
import {
  diskIdentity,
  eligibility,
  isBlank,
  isCandidate,
  mediaOf,
  nodeDiskName,
  stableDevicePath,
  type DiskFacts,
  type InventoryConfig,
} from '../../src/node/agent/inventory.js';
import { filesystemUuid, stowageLabel } from '../../src/node/agent/preparation.js';
import { removedFields } from '../../src/node/agent/status-writer.js';

const LSBLK = JSON.stringify({
  blockdevices: [
    {
      name: 'vda',
      kname: 'vda',
      path: '/dev/vda',
      type: 'disk',
      size: 107374182400,
      ro: false,
      rm: false,
      rota: true,
      model: null,
      vendor: '0x1af4',
      serial: null,
      wwn: null,
      tran: null,
      pkname: null,
      'maj:min': '254:0',
      fstype: null,
      label: null,
    },
    {
      name: 'sda',
      kname: 'sda',
      path: '/dev/sda',
      type: 'disk',
      size: 4000787030016,
      ro: false,
      rm: false,
      rota: true,
      model: 'ST4000NM0035 ',
      vendor: 'ATA     ',
      serial: 'ZC1234',
      wwn: '0x5000c500a1b2c3d4',
      tran: 'sata',
      pkname: null,
      'maj:min': '8:0',
      fstype: null,
      label: null,
      children: [
        {
          name: 'sda1',
          kname: 'sda1',
          path: '/dev/sda1',
          type: 'part',
          size: 1048576,
          'maj:min': '8:1',
          fstype: 'ext4',
          label: 'data',
          pkname: 'sda',
        },
      ],
    },
    {
      name: 'nvme0n1',
      kname: 'nvme0n1',
      path: '/dev/nvme0n1',
      type: 'disk',
      size: 1000204886016,
      ro: false,
      rm: false,
      rota: false,
      model: 'Samsung SSD 980',
      serial: 'S64',
      wwn: 'eui.0025',
      tran: 'nvme',
      'maj:min': '259:0',
    },
    { name: 'loop3', kname: 'loop3', path: '/dev/loop3', type: 'loop', size: 67108864, ro: false, rm: false, rota: true, 'maj:min': '7:3' },
    { name: 'zram0', kname: 'zram0', path: '/dev/zram0', type: 'disk', size: 0, 'maj:min': '253:0' },
    { name: 'sr0', kname: 'sr0', path: '/dev/sr0', type: 'rom', size: 1024, 'maj:min': '11:0' },
    { name: 'dm-0', kname: 'dm-0', path: '/dev/dm-0', type: 'lvm', size: 1024, 'maj:min': '252:0' },
  ],
});

const config: InventoryConfig = { allowDevices: [], minSizeBytes: 16n * 1024n * 1024n };
const facts = (raw: RawDisk, over: Partial<DiskFacts> = {}): DiskFacts => ({
  raw,
  signatures: { types: [] },
  links: [],
  mountPoints: [],
  system: false,
  ...over,
});

describe('node inventory (pure)', () => {
  const disks = parseLsblk(LSBLK);
  const byName = (n: string): RawDisk => disks.find((d) => d.kname === n)!;

  it('parses lsblk --json --bytes, trimming padded vendor/model strings and keeping partitions', () => {
    const sda = byName('sda');
    expect(sda).to.include({
      path: '/dev/sda',
      sizeBytes: 4000787030016n,
      rotational: true,
      model: 'ST4000NM0035',
      vendor: 'ATA',
      serial: 'ZC1234',
      transport: 'sata',
      majMin: '8:0',
    });
    expect(sda.partitions).to.deep.equal([{ kname: 'sda1', majMin: '8:1', sizeBytes: 1048576n, number: 1, fsType: 'ext4', label: 'data' }]);
    expect(byName('vda').serial).to.equal(undefined);
  });

  it('considers whole disks only, never loop/zram/optical/device-mapper devices unless allow-listed', () => {
    const considered = disks.filter((d) => isCandidate(d, undefined, [])).map((d) => d.kname);
    expect(considered).to.deep.equal(['vda', 'sda', 'nvme0n1']);
    expect(isCandidate(byName('loop3'), '/tmp/x.img', ['/dev/loop3'])).to.equal(true);
    expect(isCandidate(byName('loop3'), '/tmp/x.img', ['/tmp/x.img']), 'by backing file').to.equal(true);
    expect(isCandidate(byName('sda'), undefined, ['/dev/loop3']), 'an allow-list excludes everything else').to.equal(false);
  });

  it('derives identity strongest-first and a deterministic, distinct name per disk', () => {
    expect(diskIdentity(facts(byName('sda')))).to.equal('wwn:0x5000c500a1b2c3d4/serial:ZC1234');
    expect(diskIdentity(facts(byName('loop3')))).to.equal('kname:loop3');
    expect(diskIdentity({ ...facts(byName('loop3')), backingFile: '/tmp/a.img' })).to.equal('loop:/tmp/a.img');
    expect(diskIdentity(facts(byName('vda'), { signatures: { types: ['dos'], ptUuid: 'abcd', ptType: 'dos' } }))).to.equal('ptuuid:abcd');
    expect(diskIdentity(facts(byName('vda'), { signatures: { types: ['xfs'], uuid: 'u-1' } }))).to.equal('fsuuid:u-1');
    const a = nodeDiskName('worker-1', 'serial:A');
    expect(a).to.match(/^worker-1-[0-9a-f]{10}$/);
    expect(nodeDiskName('worker-1', 'serial:A')).to.equal(a);
    expect(nodeDiskName('worker-1', 'serial:B')).to.not.equal(a);
    expect(nodeDiskName('worker-2', 'serial:A')).to.not.equal(a);
    const long = nodeDiskName('n'.repeat(253), 'serial:A');
    expect(long.length).to.be.at.most(253);
  });

  it('prefers a WWN by-id link as the stable device path, else the kernel path', () => {
    expect(
      stableDevicePath(byName('sda'), [
        '/dev/disk/by-id/ata-ST4000_ZC1234',
        '/dev/disk/by-id/wwn-0x5000c500a1b2c3d4',
        '/dev/disk/by-path/pci-0000:00:1f.2-ata-1',
      ]),
    ).to.equal('/dev/disk/by-id/wwn-0x5000c500a1b2c3d4');
    expect(stableDevicePath(byName('vda'), [])).to.equal('/dev/vda');
  });

  it('tells media apart', () => {
    expect(mediaOf(byName('sda'))).to.equal('hdd');
    expect(mediaOf(byName('nvme0n1'))).to.equal('nvme');
    expect(mediaOf(byName('loop3'))).to.equal('unknown');
    expect(mediaOf(byName('vda')), 'virtual disks do not tell').to.equal('unknown');
    expect(mediaOf({ ...byName('sda'), rotational: false })).to.equal('ssd');
  });

  it('explains ineligibility in the order an administrator needs it', () => {
    const vda = byName('vda');
    expect(eligibility(facts(vda), config)).to.include({ eligible: true, reason: 'Blank' });
    expect(eligibility(facts(vda, { system: true, mountPoints: ['/'] }), config).reason).to.equal('SystemDisk');
    expect(eligibility(facts({ ...vda, readOnly: true }), config).reason).to.equal('ReadOnly');
    expect(eligibility(facts(vda, { mountPoints: ['/mnt/x'] }), config).reason).to.equal('Mounted');
    expect(eligibility(facts(vda, { mountPoints: ['[SWAP]'] }), config).reason).to.equal('Mounted');
    expect(eligibility(facts(byName('sda')), config).reason).to.equal('HasPartitions');
    expect(eligibility(facts(vda, { signatures: { types: ['gpt', 'PMBR'] } }), config).reason).to.equal('HasPartitions');
    expect(eligibility(facts(vda, { signatures: { types: ['LVM2_member'] } }), config).reason).to.equal('HasFilesystem');
    expect(eligibility(facts(vda, { signatures: { types: [], ambivalent: true } }), config).reason).to.equal('HasFilesystem');
    expect(eligibility(facts(byName('loop3')), { ...config, minSizeBytes: 1n << 30n })).to.include({ reason: 'TooSmall' });
    expect(eligibility(facts(byName('sda')), { ...config, exclude: { vendors: ['AT*'] } })).to.include({ reason: 'ExcludedByFilter' });
    expect(eligibility(facts(vda), { ...config, include: { models: ['Samsung*'] } }).reason).to.equal('ExcludedByFilter');
    expect(eligibility(facts(byName('nvme0n1')), { ...config, include: { models: ['Samsung*'] } }).reason).to.equal('Blank');
    expect(
      eligibility(facts(vda, { links: ['/dev/disk/by-path/virtio-pci-1'] }), {
        ...config,
        exclude: { paths: ['/dev/disk/by-path/virtio-*'] },
      }).reason,
    ).to.equal('ExcludedByFilter');
    expect(isBlank(facts(vda))).to.equal(true);
    expect(isBlank(facts(vda, { signatures: { types: ['ext4'], fsType: 'ext4' } }))).to.equal(false);
  });

  it('parses blkid export, wipefs JSON and mountinfo', () => {
    const blkid = parseBlkidExport(
      'DEVNAME=/dev/loop1\nLABEL=hello\nUUID=05777e80\nTYPE=ext4\nUSAGE=filesystem\n\nDEVNAME=/dev/loop2\nPTUUID=12345678\nPTTYPE=dos\n',
    );
    expect(blkid.get('/dev/loop1')).to.deep.equal({ fsType: 'ext4', uuid: '05777e80', label: 'hello' });
    expect(blkid.get('/dev/loop2')).to.deep.equal({ ptType: 'dos', ptUuid: '12345678' });
    const wipefs = parseWipefs(
      JSON.stringify({
        signatures: [
          { device: 'loop2', offset: '0x1fe', type: 'dos', uuid: null },
          { device: 'loop1', type: 'ext4' },
          { device: 'loop2', type: 'PMBR' },
        ],
      }),
    );
    expect(wipefs.get('loop2')).to.deep.equal(['dos', 'PMBR']);
    expect(parseWipefs('').size).to.equal(0);
    const mounts = parseMountinfo(
      '36 35 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n90 36 7:1 / /mnt/disks/my\\040vol rw - xfs /dev/loop1 rw\n',
    );
    expect(mounts).to.deep.equal([
      { majMin: '254:0', target: '/', fsType: 'ext4', source: '/dev/vda' },
      { majMin: '7:1', target: '/mnt/disks/my vol', fsType: 'xfs', source: '/dev/loop1' },
    ]);
  });

  it('marks Stowage filesystems with a per-disk label that fits XFS, and a deterministic UUID per wipe epoch', () => {
    expect(stowageLabel('worker-1-0123456789')).to.match(/^stw-[0-9a-f]{8}$/);
    expect(stowageLabel('a')).to.not.equal(stowageLabel('b'));
    const u = filesystemUuid('disk', '');
    expect(u).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(filesystemUuid('disk', '')).to.equal(u);
    expect(filesystemUuid('disk', 'pv-uid-1')).to.not.equal(u);
  });

  it('computes the merge patch that removes status fields the agent no longer states', () => {
    expect(removedFields({ a: 1, b: { c: 1 } }, { a: 1, b: { c: 1 } })).to.equal(undefined);
    expect(removedFields({ a: 1 }, { a: 1, preparation: { path: '/x' }, claim: { pool: 'p' } })).to.deep.equal({
      preparation: null,
      claim: null,
    });
    expect(removedFields({ filesystem: { type: 'ext4' } }, { filesystem: { type: 'ext4', label: 'x' } })).to.deep.equal({
      filesystem: { label: null },
    });
    expect(removedFields({ a: 1 }, undefined)).to.equal(undefined);
  });
});
