// The Debian half of the image's SBOM (`make release`, hack/release.sh): one CycloneDX document
// listing every Debian package in the image's base layer, from the list hack/build-image.sh records
// with dpkg-query inside the image (build/image/stowage-<version>.packages.txt: "name version [arch]").
// The npm half comes from @cyclonedx/cyclonedx-npm over package-lock.json. No tool here reads a
// dpkg list and none merges two CycloneDX documents (cyclonedx-cli is .NET, not packaged by
// Debian or npm), so this document is built with CycloneDX's own library (@cyclonedx/cyclonedx-library):
// its models, its Package URL (pkg:deb/debian/NAME@VERSION?arch=…&distro=…) and its serializer.
//
// Usage: node dist/hack/sbom-debian.js PACKAGES_TXT VERSION DISTRO > stowage-<version>.debian.cdx.json

import { readFileSync } from 'node:fs';
import * as CDX from '@cyclonedx/cyclonedx-library';
import { PackageURL } from 'packageurl-js';

const SPEC = CDX.Spec.Spec1dot6;
const IMAGE_NAME = 'stowage';

export interface DebianPackage {
  readonly name: string;
  readonly version: string;
  readonly arch?: string;
}

/** Parses the dpkg-query list; throws naming the line that is not "name version [arch]". */
export function parsePackageList(text: string, file = 'the package list'): DebianPackage[] {
  const out: DebianPackage[] = [];
  text.split('\n').forEach((line, i) => {
    const fields = line.trim().split(/\s+/).filter(Boolean);
    if (fields.length === 0) return;
    if (fields.length < 2 || fields.length > 3)
      throw new Error(
        `${file}:${i + 1}: "${line}" is not "name version [arch]" (dpkg-query -W -f='\${Package} \${Version} \${Architecture}\\n')`,
      );
    out.push({ name: fields[0], version: fields[1], ...(fields[2] ? { arch: fields[2] } : {}) });
  });
  if (out.length === 0) throw new Error(`${file} lists no package: was the image built by hack/build-image.sh?`);
  return out;
}

/** The CycloneDX JSON document (spec 1.6) of the image's Debian packages, deterministic for the same input. */
export function debianSbom(packages: readonly DebianPackage[], imageVersion: string, distro: string): string {
  const bom = new CDX.Models.Bom();
  bom.metadata.component = new CDX.Models.Component(CDX.Enums.ComponentType.Container, IMAGE_NAME, {
    version: imageVersion,
    bomRef: `${IMAGE_NAME}@${imageVersion}`,
    description: `the Debian ${distro} packages of Stowage's image (hack/build-image.sh)`,
  });
  bom.metadata.tools.components.add(
    new CDX.Models.Component(CDX.Enums.ComponentType.Application, 'cyclonedx-library', { group: '@cyclonedx' }),
  );
  for (const p of packages) {
    const qualifiers: Record<string, string> = { distro };
    if (p.arch) qualifiers.arch = p.arch;
    const purl = new PackageURL('deb', 'debian', p.name, p.version, qualifiers, undefined).toString();
    bom.components.add(new CDX.Models.Component(CDX.Enums.ComponentType.Library, p.name, { version: p.version, purl, bomRef: purl }));
  }
  const serializer = new CDX.Serialize.JsonSerializer(new CDX.Serialize.JSON.Normalize.Factory(SPEC));
  // Reproducible: no serial number or timestamp, lists sorted (the release's SHA256SUMS stays stable).
  return serializer.serialize(bom, { sortLists: true, space: 2 });
}

if (process.argv[1]?.endsWith('sbom-debian.js')) {
  const [file, version, distro] = process.argv.slice(2);
  if (!file || !version || !distro) {
    process.stderr.write('usage: node dist/hack/sbom-debian.js PACKAGES_TXT VERSION DISTRO\n');
    process.exit(2);
  }
  process.stdout.write(`${debianSbom(parsePackageList(readFileSync(file, 'utf8'), file), version, distro)}\n`);
}
