/** metav1.LabelSelector: `matchLabels` and `matchExpressions` are ANDed; an empty selector matches everything. */
export interface LabelSelectorLike {
  readonly matchLabels?: Readonly<Record<string, string>>;
  readonly matchExpressions?: ReadonlyArray<{ readonly key: string; readonly operator: string; readonly values?: readonly string[] }>;
}

/** Whether `labels` satisfy `selector`, with the API server's semantics. */
export function matchesSelector(selector: LabelSelectorLike | undefined, labels: Readonly<Record<string, string>> | undefined): boolean {
  if (!selector) return true;
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (have[key] !== value) return false;
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const present = Object.prototype.hasOwnProperty.call(have, key);
    switch (operator) {
      case 'In':
        if (!present || !values.includes(have[key])) return false;
        break;
      case 'NotIn':
        if (present && values.includes(have[key])) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        return false; // unknown operators select nothing, as the API server would reject them anyway
    }
  }
  return true;
}
