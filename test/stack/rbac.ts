// The permissions config/rbac grants a ServiceAccount, flattened to one entry per
// (namespace, group, resource[/subresource], verb, resourceName), for the least-privilege test.

import type { KubeObject } from '../../src/kube/types.js';
import { configObjects } from './models.js';

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  verbs: string[];
  resourceNames?: string[];
}

export interface Grant {
  /** undefined: cluster-wide (a ClusterRole through a ClusterRoleBinding). */
  readonly namespace: string | undefined;
  readonly group: string;
  /** `resource` or `resource/subresource`. */
  readonly resource: string;
  readonly verb: string;
  /** undefined: any name. */
  readonly resourceName: string | undefined;
}

export function grantKey(g: Grant): string {
  return `${g.namespace ?? '*'} ${g.group || 'core'} ${g.resource} ${g.verb}${g.resourceName ? ` (${g.resourceName})` : ''}`;
}

/** Everything the install's roles grant `serviceAccount` in `namespace`, rule by rule, from the YAML in config/rbac. */
export async function grantsOf(serviceAccount: string, namespace: string, files?: (file: string) => boolean): Promise<Grant[]> {
  const objects = (await configObjects('rbac')).filter(({ file }) => !files || files(file)).map(({ obj }) => obj);
  const roles = new Map<string, PolicyRule[]>();
  for (const obj of objects) {
    if (obj.kind === 'ClusterRole' || obj.kind === 'Role') {
      roles.set(`${obj.kind}/${obj.metadata.namespace ?? ''}/${obj.metadata.name}`, (obj as KubeObject & { rules: PolicyRule[] }).rules);
    }
  }
  const grants: Grant[] = [];
  for (const obj of objects) {
    if (obj.kind !== 'ClusterRoleBinding' && obj.kind !== 'RoleBinding') continue;
    const binding = obj as KubeObject & {
      subjects: { kind: string; name: string; namespace?: string }[];
      roleRef: { kind: string; name: string };
    };
    if (!binding.subjects.some((s) => s.kind === 'ServiceAccount' && s.name === serviceAccount && s.namespace === namespace)) continue;
    const scope = obj.kind === 'RoleBinding' ? obj.metadata.namespace : undefined;
    const roleKey = `${binding.roleRef.kind}/${binding.roleRef.kind === 'Role' ? scope : ''}/${binding.roleRef.name}`;
    const rules = roles.get(roleKey);
    if (!rules) throw new Error(`${obj.kind} ${obj.metadata.name} refers to ${roleKey}, which config/rbac does not define`);
    for (const rule of rules) {
      for (const group of rule.apiGroups ?? ['']) {
        for (const resource of rule.resources ?? []) {
          for (const verb of rule.verbs) {
            for (const resourceName of rule.resourceNames ?? [undefined])
              grants.push({ namespace: scope, group, resource, verb, resourceName });
          }
        }
      }
    }
  }
  return grants;
}
