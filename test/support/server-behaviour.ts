// What the API server the tests were given does, by its version, so that tests assert that
// server's behaviour instead of assuming the 1.20 of CI. Each switch names the release that turned
// the behaviour on by default.

export interface ServerBehaviour {
  gitVersion: string;
  major: number;
  minor: number;
  /** CRD `x-kubernetes-validations` (CEL) enforced at admission: CustomResourceValidationExpressions,
   *  beta and on by default from 1.25 (accepted but off in 1.23–1.24, refused before). */
  celAtAdmission: boolean;
  /** Server-side field validation (`?fieldValidation=Strict`, unknown fields rejected instead of
   *  pruned): ServerSideFieldValidation, beta and on by default from 1.25. */
  strictFieldValidation: boolean;
}

/** From the server's `/version` ({ major: "1", minor: "20" or "22+", gitVersion }). */
export function serverBehaviour(version: { major: string | number; minor: string | number; gitVersion?: string }): ServerBehaviour {
  const major = parseInt(String(version.major), 10);
  const minor = parseInt(String(version.minor), 10);
  if (Number.isNaN(major) || Number.isNaN(minor)) throw new Error(`server version ${JSON.stringify(version)}: no numeric major/minor`);
  const from = (m: number) => major > 1 || (major === 1 && minor >= m);
  return {
    gitVersion: version.gitVersion ?? `v${major}.${minor}`,
    major,
    minor,
    celAtAdmission: from(25),
    strictFieldValidation: from(25),
  };
}
