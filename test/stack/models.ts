// Validation of generated and shipped objects against the official Kubernetes schemas
// (kubernetes-models), by apiVersion and kind.

import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { CSIDriver, StorageClass } from 'kubernetes-models/storage.k8s.io/v1';
import { Namespace, PersistentVolume, Service, ServiceAccount } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import type { KubeObject } from '../../src/kube/types.js';

type ModelClass = new (data: never) => { validate(): void };

const MODELS: Record<string, ModelClass> = {
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/Deployment': Deployment,
  'storage.k8s.io/v1/CSIDriver': CSIDriver,
  'storage.k8s.io/v1/StorageClass': StorageClass,
  'v1/PersistentVolume': PersistentVolume,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'v1/Namespace': Namespace,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
};

/** Throws when `obj` does not validate against its kind's official schema (or the kind is unknown here). */
export function validateModel(obj: KubeObject): void {
  const Model = MODELS[`${obj.apiVersion}/${obj.kind}`];
  if (!Model) throw new Error(`no kubernetes-models class registered for ${obj.apiVersion} ${obj.kind}`);
  new Model(obj as never).validate();
}

export const CONFIG_DIR = fileURLToPath(new URL('../../../config/', import.meta.url));

/** Every object in the YAML files of config/<dir> (kustomization.yaml excluded), with its file name. */
export async function configObjects(dir: string): Promise<{ file: string; obj: KubeObject }[]> {
  const out: { file: string; obj: KubeObject }[] = [];
  const root = join(CONFIG_DIR, dir);
  for (const file of (await readdir(root)).sort()) {
    if (!file.endsWith('.yaml') || file === 'kustomization.yaml') continue;
    for (const doc of parseAllDocuments(await readFile(join(root, file), 'utf8'))) {
      const obj = doc.toJS() as KubeObject | null;
      if (obj) out.push({ file: `${dir}/${file}`, obj });
    }
  }
  return out;
}
