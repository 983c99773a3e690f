/** The Stowage API (group stowage.dev, version v1alpha1): types, schemas, CRDs and validation. */
export * from './meta.js';
export * from './schema.js';
export * from './storagepool.js';
export * from './nodedisk.js';
export * from './poolvolume.js';
export * from './poolsnapshot.js';
export * from './crd.js';
export { crossFieldProblems, ruleProblems, schemaForKind } from './rules.js';
export { STOWAGE_KINDS, isValid, pointerToPath, precompileValidator, toAjvSchema, validateObject, withDefaults } from './validation.js';
