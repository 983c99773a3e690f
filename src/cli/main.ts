#!/usr/bin/env node
import { Command, Option } from 'commander';
import { VERSION } from '../util/version.js';
import type { CallObserver } from '../csi/grpc.js';
import type { NodeCommandOptions } from '../node/main.js';

/**
 * `stowage`: one binary, one sub-command per role (DESIGN §2). Sub-commands load their modules
 * lazily so `stowage validate` does not pay for the operator's dependencies.
 */
const program = new Command()
  .name('stowage')
  .description('Stowage: turns the disks of Kubernetes nodes into StorageClasses, local PVs and CSI volumes')
  .version(VERSION, '--version', 'print the version')
  .showHelpAfterError();

program
  .command('version')
  .description('print the version')
  .action(() => {
    process.stdout.write(`stowage ${VERSION}\n`);
  });

program
  .command('validate')
  .description('check StoragePool and NodeDisk manifests against the API schema and cross-field rules, offline')
  .requiredOption('-f, --filename <paths...>', 'files or directories (YAML or JSON, multi-document) to check')
  .action(async (opts: { filename: string[] }) => {
    const { validateCommand } = await import('./validate.js');
    process.exitCode = await validateCommand(opts.filename, process.stdout);
  });

program
  .command('render')
  .description('print, offline, every object the operator would create for these StoragePool, NodeDisk and Node manifests')
  .requiredOption('-f, --filename <paths...>', 'files or directories (YAML or JSON, multi-document)')
  .option('--namespace <ns>', 'namespace of the driver stack', 'stowage-system')
  .addOption(
    new Option('--image <name=ref>', "override one image of the driver stack (repeatable), as the operator's --image")
      .default([])
      .argParser((v: string, previous: string[]) => [...previous, v]),
  )
  .addOption(
    new Option('--node-registration <who>', "who registers the node plugin with kubelet, as the operator's --node-registration")
      .choices(['self', 'node-driver-registrar'])
      .default('self'),
  )
  .option(
    '--kubernetes-version <version>',
    "render for this API server version (e.g. 1.22): the sidecars and their flags follow it (default: the newest servers')",
  )
  .option('--kubelet-root-dir <dir>', "kubelet's root directory on the nodes, as the operator's --kubelet-root-dir", '/var/lib/kubelet')
  .action(
    async (opts: {
      filename: string[];
      namespace: string;
      image: string[];
      nodeRegistration: 'self' | 'node-driver-registrar';
      kubernetesVersion?: string;
      kubeletRootDir: string;
    }) => {
      const { renderCommand } = await import('./render.js');
      process.exitCode = await renderCommand(
        opts.filename,
        {
          namespace: opts.namespace,
          images: opts.image,
          registration: opts.nodeRegistration,
          kubeletRootDir: opts.kubeletRootDir,
          ...(opts.kubernetesVersion ? { kubernetesVersion: opts.kubernetesVersion } : {}),
        },
        process.stdout,
        process.stderr,
      );
    },
  );

program
  .command('operator')
  .description('run the operator: reconciles StoragePools into StorageClasses, PVs and the driver stack')
  .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
  .option('--context <name>', 'kubeconfig context to use')
  .option('--metrics-bind-address <addr>', 'HOST:PORT for /metrics; "0" turns it off', ':8080')
  .option('--health-probe-bind-address <addr>', 'HOST:PORT for /healthz and /readyz; "0" turns it off', ':8081')
  .option('--leader-elect', 'elect one active replica through a Lease (use with more than one replica)', false)
  .option('--leader-election-namespace <ns>', "namespace of the leader-election Lease (default: this pod's namespace, or stowage-system)")
  .option('--leader-election-id <name>', 'name of the leader-election Lease', 'stowage-operator')
  .addOption(new Option('--workers <n>', 'reconciles run at once per controller').default(4).argParser((v) => positiveInt(v, '--workers')))
  .addOption(
    new Option('--resync-period <seconds>', 'every object is reconciled again this often, even without a change')
      .default(600)
      .argParser((v) => positiveInt(v, '--resync-period')),
  )
  .option('--namespace <ns>', "namespace of the driver stack (default: this pod's namespace, or stowage-system)")
  .addOption(
    new Option(
      '--image <name=ref>',
      "use this image for one entry of the driver stack's image table (repeatable; names: stowage, csi-provisioner, csi-resizer, csi-snapshotter, csi-node-driver-registrar, livenessprobe)",
    )
      .default([])
      .argParser((v: string, previous: string[]) => [...previous, v]),
  )
  .addOption(
    new Option(
      '--node-registration <who>',
      'who registers the node plugin with kubelet and serves its liveness: "self" (stowage node itself; the DaemonSet runs Stowage\'s image alone) or "node-driver-registrar" (the upstream node-driver-registrar and livenessprobe sidecars)',
    )
      .choices(['self', 'node-driver-registrar'])
      .default('self'),
  )
  .addOption(
    new Option(
      '--node-agent-arg <arg>',
      'pass this discovery flag to `stowage node` in the node DaemonSet (repeatable; e.g. --node-agent-arg=--include-path=/dev/disk/by-id/nvme-*; flags: allow-device, discovery-dir, include-/exclude-path, -vendor, -model, min-size, discovery-interval, health-interval)',
    )
      .default([])
      .argParser((v: string, previous: string[]) => [...previous, v]),
  )
  .option(
    '--kubelet-root-dir <dir>',
    "kubelet's root directory (its --root-dir) on the nodes: the node DaemonSet mounts it and registers the plugin under it (k0s: /var/lib/k0s/kubelet; see docs/install.md)",
    '/var/lib/kubelet',
  )
  .action(async (opts: OperatorFlags) => {
    const { runOperator } = await import('../operator/main.js');
    process.exitCode = await runOperator({
      kubeconfig: opts.kubeconfig,
      context: opts.context,
      metricsAddress: opts.metricsBindAddress,
      healthAddress: opts.healthProbeBindAddress,
      leaderElect: opts.leaderElect,
      leaderElectionNamespace: opts.leaderElectionNamespace,
      leaderElectionId: opts.leaderElectionId,
      workers: opts.workers,
      resyncSeconds: opts.resyncPeriod,
      namespace: opts.namespace,
      images: opts.image,
      nodeRegistration: opts.nodeRegistration,
      nodeAgentArgs: opts.nodeAgentArg,
      kubeletRootDir: opts.kubeletRootDir,
    });
  });

program
  .command('csi-controller')
  .description('serve the CSI Identity and Controller services of csi.stowage.dev (Dynamic pools) on a Unix socket')
  .option('--endpoint <unix-url>', 'CSI endpoint, e.g. unix:///csi/csi.sock', 'unix:///csi/csi.sock')
  .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
  .option('--context <name>', 'kubeconfig context to use')
  .addOption(
    new Option('--metadata-reserve-percent <n>', "share of each node's pool space kept free for btrfs metadata")
      .default(10)
      .argParser(Number),
  )
  .option('--metrics-bind-address <addr>', 'HOST:PORT for /metrics (CSI call counts and latencies); "0" turns it off', '0')
  .action(
    async (opts: {
      endpoint: string;
      kubeconfig?: string;
      context?: string;
      metadataReservePercent: number;
      metricsBindAddress: string;
    }) => {
      const { runCsiController } = await import('../csi/controller-main.js');
      process.exitCode = await runCsiController(opts);
    },
  );

const collect = (value: string, previous: string[]): string[] => [...previous, value];

program
  .command('node')
  .description('run the node agent on this node: disk inventory (NodeDisks), preparation of claimed disks, wiping, health')
  .option('--kubeconfig <path>', 'kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or in-cluster)')
  .option('--context <name>', 'kubeconfig context to use')
  .option('--node-name <name>', "this node's name (default: $NODE_NAME)")
  .option(
    '--allow-device <path>',
    "only consider this device (a /dev path, or a loop device's backing file); repeat it; the only way a loop device is considered",
    collect,
    [],
  )
  .option('--root <dir>', 'where prepared disks are mounted, one directory per NodeDisk', '/var/lib/stowage/disks')
  .option('--discovery-dir <dir>', 'inventory filesystems mounted directly under this directory (e.g. /mnt/disks); repeat it', collect, [])
  .option('--include-path <glob>', 'only disks whose /dev path or /dev/disk link matches are eligible; repeat it', collect, [])
  .option('--exclude-path <glob>', 'disks whose /dev path or /dev/disk link matches are not eligible; repeat it', collect, [])
  .option('--include-vendor <glob>', 'only disks of a matching vendor are eligible; repeat it', collect, [])
  .option('--exclude-vendor <glob>', 'disks of a matching vendor are not eligible; repeat it', collect, [])
  .option('--include-model <glob>', 'only disks of a matching model are eligible; repeat it', collect, [])
  .option('--exclude-model <glob>', 'disks of a matching model are not eligible; repeat it', collect, [])
  .option('--min-size <quantity>', 'disks smaller than this are not eligible (default 16Mi)')
  .addOption(
    new Option('--discovery-interval <seconds>', 'rediscover disks this often (udev events trigger it sooner)')
      .default(30)
      .argParser((v) => positiveInt(v, '--discovery-interval')),
  )
  .addOption(
    new Option('--health-interval <seconds>', 'read SMART health this often')
      .default(300)
      .argParser((v) => positiveInt(v, '--health-interval')),
  )
  .option('--metrics-bind-address <addr>', 'HOST:PORT for /metrics, /healthz and /readyz of the node daemon; "0" turns it off', '0')
  .option('--no-udev', 'do not watch udevadm monitor for block events')
  .option('--pool-root <dir>', 'Dynamic pools: their btrfs filesystems are mounted at <dir>/pools/<pool>', '/var/lib/stowage')
  .option(
    '--csi-endpoint <unix-url>',
    'Dynamic pools: serve the CSI Node service here, e.g. unix:///var/lib/kubelet/plugins/csi.stowage.dev/csi.sock; off when omitted',
    '',
  )
  .option(
    '--kubelet-dir <dir>',
    "Dynamic pools: kubelet's directory; the CSI Node service refuses staging and target paths outside it",
    '/var/lib/kubelet',
  )
  .option(
    '--kubelet-registration-dir <dir>',
    'Dynamic pools: register the CSI driver with kubelet through a socket in this directory (e.g. /var/lib/kubelet/plugins_registry); off when omitted',
  )
  .action(
    async (opts: NodeCommandOptions & { poolRoot: string; csiEndpoint: string; kubeletDir: string; kubeletRegistrationDir?: string }) => {
      const { runNodeCommand } = await import('../node/main.js');
      const { startDynamicPools } = await import('../node/engine/node-daemon.js');
      const { KubeClient } = await import('../kube/client.js');
      const nodeName = opts.nodeName ?? process.env.NODE_NAME;
      if (!nodeName) throw new Error('the node name is unknown: set NODE_NAME (from the downward API, spec.nodeName) or pass --node-name');
      const client = await KubeClient.load({ kubeconfig: opts.kubeconfig, context: opts.context, userAgent: 'stowage-node-csi' });
      // The node's /metrics is set up by runNodeCommand; CSI calls answered before then are not counted.
      let observeCsi: CallObserver | undefined;
      // Probe answers from /readyz's checks, which runNodeCommand assembles; until then it is not ready.
      let notReady: () => string | undefined = () => 'the node daemon is starting';
      const dynamic = await startDynamicPools({
        client,
        nodeName,
        poolRoot: opts.poolRoot,
        csiEndpoint: opts.csiEndpoint,
        kubeletDir: opts.kubeletDir,
        ...(opts.kubeletRegistrationDir ? { registrationDir: opts.kubeletRegistrationDir } : {}),
        observe: (...call) => observeCsi?.(...call),
        notReady: () => notReady(),
      });
      try {
        // /healthz also fails when the CSI or registration socket is gone: with --node-registration=self
        // it is the DaemonSet's liveness probe, in place of the livenessprobe sidecar.
        process.exitCode = await runNodeCommand(
          opts,
          dynamic.engine,
          (metrics) => (observeCsi = (method, code, seconds) => metrics.csi.observe(method, code, seconds)),
          {
            'csi-sockets': () => dynamic.socketsCheck(),
          },
          { 'storagepool-cache': () => dynamic.notReady() },
          (check) => (notReady = check),
        );
      } finally {
        await dynamic.stop();
        client.close();
      }
    },
  );

interface OperatorFlags {
  kubeconfig?: string;
  context?: string;
  metricsBindAddress: string;
  healthProbeBindAddress: string;
  leaderElect: boolean;
  leaderElectionNamespace?: string;
  leaderElectionId: string;
  workers: number;
  resyncPeriod: number;
  namespace?: string;
  image: string[];
  nodeRegistration: 'self' | 'node-driver-registrar';
  /** commander names a repeatable option's list after the flag: --node-agent-arg. */
  nodeAgentArg: string[];
  kubeletRootDir: string;
}

function positiveInt(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a whole number of at least 1, not "${value}"`);
  return n;
}

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`stowage: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
