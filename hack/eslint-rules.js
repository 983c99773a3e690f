// Stowage's own ESLint rule (eslint.config.js loads it as the plugin `stowage`).
//
// explained-swallow: a rejection dropped without a word must say why silence is right. It reports
//   - `.catch(handler)` and `.then(onFulfilled, handler)` whose handler neither uses the error, nor
//     calls anything (a logger, a recorder), nor throws: `.catch(() => undefined)`, `.catch(() => {})`,
//     `.catch(() => false)`;
//   - `void expression` where the expression is a promise (type-checked files only) with no
//     rejection handler of its own (`void p.catch(log)` is handled): the promise floats on purpose,
//     and its rejection, if nobody handles it, ends the process;
// unless a comment explains it: a comment on the lines of the expression, or the comment right
// above the statement that holds it (an eslint-disable comment is no explanation). With the option
// `{ cleanup: true }` (tests, benchmarks, dev scripts), clean-up explains itself: a swallow inside a
// `finally` block, a mocha `after`/`afterEach` hook or a function named for clean-up (teardown,
// stop, cleanup, …) removes what may already be gone, and a leak is caught by the test hygiene
// check (STOWAGE_TEST_HYGIENE), not by the clean-up's error. src/ gets no such leave. So the number of
// unexplained swallows in a tree is the number of findings of this rule, and `make lint` keeps it
// at zero.

/** @typedef {import('eslint').Rule.RuleModule} RuleModule */
/** @typedef {import('estree').Node} Node */
/** @typedef {import('eslint').AST.Token | import('estree').Comment} CommentLike */

/** @param {CommentLike} c */
const isExplanation = (c) => !/^\s*(eslint|global\b|exported\b)/.test(c.value) && c.value.trim() !== '';

/** @param {Node} fn */
function swallows(fn) {
  if (fn.type !== 'ArrowFunctionExpression' && fn.type !== 'FunctionExpression') return false;
  if (fn.params.length > 0) {
    // A handler that names the error is taken as using it only if the name appears in its body.
    const names = fn.params.filter((p) => p.type === 'Identifier').map((p) => p.name);
    if (names.some((n) => mentions(fn.body, n))) return false;
  }
  return !contains(
    fn.body,
    (n) => n.type === 'CallExpression' || n.type === 'NewExpression' || n.type === 'ThrowStatement' || n.type === 'AwaitExpression',
  );
}

/** @param {Node} node @param {(n: Node) => boolean} test @returns {boolean} */
function contains(node, test) {
  if (test(node)) return true;
  for (const [key, value] of Object.entries(node)) {
    if (key === 'parent' || key === 'loc' || key === 'range') continue;
    const children = Array.isArray(value) ? value : [value];
    for (const child of children) {
      if (child && typeof child === 'object' && typeof child.type === 'string' && contains(child, test)) return true;
    }
  }
  return false;
}

/** @param {Node} node @param {string} name */
const mentions = (node, name) => contains(node, (n) => n.type === 'Identifier' && n.name === name);

/**
 * Whether a comment explains `node`: one on lines first-1..last, or the one right above the
 * statement that holds it.
 * @param {import('eslint').Rule.RuleContext} context @param {Node} node @param {number} first @param {number} last
 */
function explained(context, node, first, last) {
  const source = context.sourceCode;
  if (source.getAllComments().some((c) => isExplanation(c) && c.loc.end.line >= first - 1 && c.loc.start.line <= last)) return true;
  // The comment right above the statement (or class member) that holds the expression, or above
  // the loop or `if` whose unbraced body that statement is.
  let holder = node;
  while (holder.parent && !/Statement$|Declaration$|^PropertyDefinition$/.test(holder.type)) holder = holder.parent;
  for (;;) {
    const lastBefore = source.getCommentsBefore(holder).filter(isExplanation).at(-1);
    if (lastBefore !== undefined && lastBefore.loc.end.line >= holder.loc.start.line - 1) return true;
    const parent = holder.parent;
    if (!parent || !/^(If|For|ForOf|ForIn|While|DoWhile|Labeled)Statement$/.test(parent.type)) return false;
    holder = parent;
  }
}

const HOOKS = new Set(['after', 'afterEach']);

/** Names of functions and methods whose whole job is clean-up (teardown(), stop(), cleanup()). */
const CLEANUP_NAME = /^(teardown|tearDown|cleanup|cleanUp|stop|close|dispose|destroy|release|remove|unmount|detach)/;

/** The name of a function node, from its declaration, method or variable. @param {Node} fn */
function functionName(fn) {
  if (fn.type === 'FunctionDeclaration' && fn.id) return fn.id.name;
  const parent = fn.parent;
  if (parent?.type === 'MethodDefinition' || parent?.type === 'Property')
    return parent.key.type === 'Identifier' ? parent.key.name : undefined;
  if (parent?.type === 'VariableDeclarator' && parent.id.type === 'Identifier') return parent.id.name;
  return undefined;
}

/**
 * Whether `node` runs as clean-up: in a `finally` block, in a mocha after/afterEach hook, or in a
 * function named for clean-up. @param {Node} node
 */
function inCleanup(node) {
  for (let n = node; n.parent; n = n.parent) {
    const parent = n.parent;
    if (/Function/.test(n.type) && CLEANUP_NAME.test(functionName(n) ?? '')) return true;
    if (parent.type === 'TryStatement' && parent.finalizer === n) return true;
    if (
      parent.type === 'CallExpression' &&
      parent.callee.type === 'Identifier' &&
      HOOKS.has(parent.callee.name) &&
      parent.arguments.includes(n)
    )
      return true;
  }
  return false;
}

/** `p.catch(handler)` or `p.then(onFulfilled, handler)`: its rejection is handled (whether the handler swallows is checked on its own). @param {Node} node */
function handled(node) {
  if (node.type !== 'CallExpression' || node.callee.type !== 'MemberExpression' || node.callee.property.type !== 'Identifier') return false;
  const method = node.callee.property.name;
  return (method === 'catch' && node.arguments.length > 0) || (method === 'then' && node.arguments.length > 1);
}

/** @param {import('eslint').Rule.RuleContext} context @param {Node} node */
function isPromise(context, node) {
  const services = context.sourceCode.parserServices;
  if (!services?.program || !services.esTreeNodeToTSNodeMap) return false;
  const checker = services.program.getTypeChecker();
  const type = checker.getTypeAtLocation(services.esTreeNodeToTSNodeMap.get(node));
  const parts = type.isUnion() ? type.types : [type];
  return parts.some((t) => t.getProperty('then') !== undefined);
}

/** @type {RuleModule} */
const explainedSwallow = {
  meta: {
    type: 'problem',
    docs: { description: 'A swallowed rejection or a deliberately floating promise carries a comment saying why' },
    messages: {
      catch:
        'This handler drops the rejection without a word: log what failed and why it is safe to go on, turn it into a condition or event, or add a comment saying why silence is right.',
      void: 'This promise floats on purpose (`void`): add a comment saying why nobody awaits it and what handles its rejection.',
    },
    schema: [{ type: 'object', properties: { cleanup: { type: 'boolean' } }, additionalProperties: false }],
  },
  create(context) {
    const cleanup = context.options[0]?.cleanup === true;
    return {
      CallExpression(node) {
        if (node.callee.type !== 'MemberExpression' || node.callee.property.type !== 'Identifier') return;
        const method = node.callee.property.name;
        const handler = method === 'catch' ? node.arguments[0] : method === 'then' ? node.arguments[1] : undefined;
        if (!handler || !swallows(handler) || (cleanup && inCleanup(node))) return;
        if (!explained(context, node, node.callee.property.loc.start.line, handler.loc.end.line))
          context.report({ node: handler, messageId: 'catch' });
      },
      UnaryExpression(node) {
        if (node.operator !== 'void' || handled(node.argument) || !isPromise(context, node.argument)) return;
        if (!explained(context, node, node.loc.start.line, node.loc.start.line)) context.report({ node, messageId: 'void' });
      },
    };
  },
};

export default { meta: { name: 'stowage' }, rules: { 'explained-swallow': explainedSwallow } };
