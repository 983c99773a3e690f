/**
 * What both Stowage resources share: the API group and version, the Kubernetes types they embed
 * (object metadata, conditions, label selectors), and the schema fragments for them, so that each
 * convention is written down once.
 */
import { joinPath, type CelRule, type JSONSchema, type Problem } from './schema.js';

export type { Problem };

export const GROUP = 'stowage.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** The part of `metav1.ObjectMeta` Stowage reads or writes. */
export interface ObjectMeta {
  name: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: {
    apiVersion: string;
    kind: string;
    name: string;
    uid: string;
    controller?: boolean;
    blockOwnerDeletion?: boolean;
  }[];
}

export type { Condition, ConditionStatus } from '../kube/types.js';

export type LabelSelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: LabelSelectorOperator;
  values?: string[];
}

/** `metav1.LabelSelector`: all requirements are ANDed; an empty selector matches everything. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

// ---------------------------------------------------------------------------------------------
// Patterns. Each has a hint in PATTERN_HINTS so a mismatch tells the user what a valid value is.

/**
 * A non-negative Kubernetes quantity used as a size in bytes (`100Gi`, `500G`, `1.5Ti`, `1e12`,
 * `1073741824`). Sizes are strings, never numbers: JavaScript numbers lose precision past 2^53
 * bytes, and a string keeps the administrator's spelling. The sub-unit suffixes `m`, `u` and `n`
 * are refused on purpose: `100m` is a tenth of a byte, which is always a typo for `100M`/`100Mi`.
 */
export const SIZE_PATTERN = '^\\+?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([KMGTPE]i|[kMGTPE]|[eE]\\+?[0-9]+)?$';

/**
 * Text without control characters. Values the operator copies into other objects need it: the API
 * server refuses a server-side apply whose body holds them, so the copy would fail on every retry.
 */
export const PRINTABLE_PATTERN = '^[^\\x00-\\x1f\\x7f]*$';

/** RFC 1123 subdomain: what Kubernetes requires of most object names (StorageClass, Node, …). */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

/** A label key: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters. */
export const LABEL_KEY_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$';

/** A label value (may be empty). */
export const LABEL_VALUE_PATTERN = '^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$';

/** `metav1.Condition.type`, as the upstream type declares it. */
export const CONDITION_TYPE_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$';

/** `metav1.Condition.reason`: CamelCase. */
export const CONDITION_REASON_PATTERN = '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$';

/** An absolute path under /dev. */
export const DEVICE_PATH_PATTERN = '^/dev/.+$';

/** Human wording for each pattern, used by the validator instead of printing the regex. */
export const PATTERN_HINTS: Partial<Record<string, string>> = {
  [SIZE_PATTERN]:
    'must be a size such as 100Gi, 500G or 1.5Ti (binary suffixes Ki Mi Gi Ti Pi Ei, decimal k M G T P E, or plain bytes); write it as a string and do not use m, u or n',
  [PRINTABLE_PATTERN]: 'must not contain control characters (newlines, tabs, escape sequences)',
  [DNS_SUBDOMAIN_PATTERN]:
    'must be lower-case letters, digits, "-" and ".", starting and ending with a letter or digit (a DNS-1123 subdomain, e.g. fast-ssd)',
  [LABEL_KEY_PATTERN]:
    'must be a label key: an optional DNS prefix and "/", then letters, digits, "-", "_" or "." (e.g. stowage.dev/media)',
  [LABEL_VALUE_PATTERN]: 'must be a label value: empty, or letters, digits, "-", "_" and "." starting and ending with a letter or digit',
  [CONDITION_TYPE_PATTERN]: 'must be a condition type such as Ready or example.com/Degraded',
  [CONDITION_REASON_PATTERN]: 'must be a CamelCase reason such as DisksMissing',
  [DEVICE_PATH_PATTERN]: 'must be an absolute device path under /dev, preferably a /dev/disk/by-id/ link',
};

const LABEL_KEY_REGEX = new RegExp(LABEL_KEY_PATTERN);

// ---------------------------------------------------------------------------------------------
// Schema fragments.

/** A size in bytes as a quantity string; see SIZE_PATTERN for why not an integer. */
export function sizeSchema(description: string): JSONSchema {
  return { type: 'string', description, pattern: SIZE_PATTERN, maxLength: 64 };
}

/** An RFC 3339 timestamp, as Kubernetes writes `metav1.Time`. */
export function timeSchema(description: string): JSONSchema {
  return { type: 'string', format: 'date-time', description };
}

/** A non-negative counter that may exceed 2^31 (bytes, hours, sectors). */
export function counterSchema(description: string): JSONSchema {
  return { type: 'integer', format: 'int64', minimum: 0, description };
}

/** Free-form text reported by a node (model names, serials): bounded so a bad probe can't bloat etcd. */
export function textSchema(description: string, maxLength = 256): JSONSchema {
  return { type: 'string', description, maxLength };
}

/** A list of strings whose order matters to nobody; replaced as a whole on every write. */
export function stringListSchema(description: string, itemDescription: string, maxItems = 64): JSONSchema {
  return {
    type: 'array',
    description,
    maxItems,
    'x-kubernetes-list-type': 'atomic',
    items: { type: 'string', description: itemDescription, maxLength: 4096 },
  };
}

/**
 * `metav1.Condition` list, keyed by `type` so server-side apply merges one condition at a time
 * (the operator and the node agent can each own theirs). `typeDocs` lists the types this resource
 * reports, for `kubectl explain`.
 */
export function conditionsSchema(typeDocs: string): JSONSchema {
  return {
    type: 'array',
    description: `Latest observations of the object's state, one entry per type. ${typeDocs}`,
    maxItems: 32,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
    items: {
      type: 'object',
      description: 'One aspect of the current state (metav1.Condition).',
      required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
      properties: {
        type: {
          type: 'string',
          description: 'Which aspect this condition describes, e.g. Ready.',
          maxLength: 316,
          pattern: CONDITION_TYPE_PATTERN,
        },
        status: {
          type: 'string',
          description: 'True, False or Unknown (not yet determined).',
          enum: ['True', 'False', 'Unknown'],
        },
        observedGeneration: {
          type: 'integer',
          format: 'int64',
          minimum: 0,
          description:
            'The metadata.generation the condition was computed from; older than the current generation means the status is stale.',
        },
        lastTransitionTime: timeSchema('When status last changed (not when it was last checked).'),
        reason: {
          type: 'string',
          description: 'Machine-readable CamelCase cause of the status, stable enough for alerts and scripts.',
          minLength: 1,
          maxLength: 1024,
          pattern: CONDITION_REASON_PATTERN,
        },
        message: {
          type: 'string',
          description: 'Human-readable details: what was observed and, when something is wrong, what to do.',
          maxLength: 32768,
        },
      },
    },
  };
}

/** In/NotIn need values; Exists/DoesNotExist must not have any (same rule as metav1 validation). */
const requirementValuesRule: CelRule = {
  rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
  message: 'operators In and NotIn need at least one value; Exists and DoesNotExist take no values',
  field: 'values',
  holds: (self) => {
    const count = Array.isArray(self?.values) ? self.values.length : 0;
    return self?.operator === 'In' || self?.operator === 'NotIn' ? count > 0 : count === 0;
  },
};

/**
 * Label keys in matchLabels. Checked only in TypeScript (the rule has no CEL twin): CEL cost
 * estimation cannot bound the length of map keys, so a regex over them could make the API server
 * refuse the whole CRD. The API server accepts a malformed key; the operator reports it.
 */
export function labelKeyProblems(matchLabels: unknown, path: string): Problem[] {
  if (!matchLabels || typeof matchLabels !== 'object' || Array.isArray(matchLabels)) return [];
  return Object.keys(matchLabels)
    .filter((key) => key.length > 317 || !LABEL_KEY_REGEX.test(key) || key.split('/').pop()!.length > 63)
    .map((key) => ({
      path: joinPath(path, key),
      message: `invalid label key ${JSON.stringify(key)}: ${PATTERN_HINTS[LABEL_KEY_PATTERN]}`,
    }));
}

/** `metav1.LabelSelector`; `over` names what is selected, e.g. "NodeDisk" or "Node". */
export function labelSelectorSchema(description: string, over: string): JSONSchema {
  return {
    type: 'object',
    description,
    properties: {
      matchLabels: {
        type: 'object',
        description: `${over} labels that must all be present with exactly these values, e.g. {"stowage.dev/media": "ssd"}.`,
        maxProperties: 64,
        'x-stowage-check': labelKeyProblems,
        additionalProperties: {
          type: 'string',
          description: 'The required label value.',
          maxLength: 63,
          pattern: LABEL_VALUE_PATTERN,
        },
      },
      matchExpressions: {
        type: 'array',
        description: `Set-based requirements on ${over} labels; all of them must hold (together with matchLabels).`,
        maxItems: 32,
        'x-kubernetes-list-type': 'atomic',
        items: {
          type: 'object',
          description: 'One requirement: a label key, an operator and, for In/NotIn, the values.',
          required: ['key', 'operator'],
          'x-kubernetes-validations': [requirementValuesRule],
          properties: {
            key: {
              type: 'string',
              description: 'The label key the requirement applies to, e.g. stowage.dev/media.',
              maxLength: 317,
              pattern: LABEL_KEY_PATTERN,
            },
            operator: {
              type: 'string',
              description:
                'In: the label has one of the values. NotIn: the label is absent or has none of them. Exists / DoesNotExist: the key is present / absent, whatever its value.',
              enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'],
              maxLength: 16,
            },
            values: {
              type: 'array',
              description: 'Values for In and NotIn; must be empty for Exists and DoesNotExist.',
              maxItems: 64,
              'x-kubernetes-list-type': 'atomic',
              items: {
                type: 'string',
                description: 'One label value.',
                maxLength: 63,
                pattern: LABEL_VALUE_PATTERN,
              },
            },
          },
        },
      },
    },
  };
}
