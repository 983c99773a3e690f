// Keeps the README and docs/ runnable: every relative link resolves (the file, and the heading
// for an #anchor) and every command in a fenced shell block names things that exist — `make`
// targets, `npm run` scripts, files under hack/, config/, samples/ … — and `stowage …` /
// `kubectl stowage …` subcommands and flags that the built CLI lists in its --help.
//
// The parsing is pure (markdown text in, problems out); what the repository has (targets,
// scripts, files, the CLI's help) comes from a RepoFacts the caller builds once.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

export interface Problem {
  file: string;
  line: number;
  message: string;
}

/** What the repository has, asked once per run. */
export interface RepoFacts {
  root: string;
  makeTargets: ReadonlySet<string>;
  npmScripts: ReadonlySet<string>;
  /** The --help text of a CLI (`stowage` or `kubectl-stowage`), top level or of one subcommand. */
  help(cli: Cli, subcommand?: string): string;
}

export type Cli = 'stowage' | 'kubectl-stowage';

const SHELL_FENCES = new Set(['sh', 'shell', 'bash']);
/** Transcripts: only the lines after a `$ ` prompt are commands; the rest is their output. */
const CONSOLE_FENCES = new Set(['console', 'shell-session']);
/** Repository folders whose paths, named in a command, must exist. */
const CHECKED_PATH = /^(?:\.\/)?(hack|config|samples|plugins|images|bench|test|docs|src)\/[^\s'"`]*$/;

interface Block {
  lang: string;
  startLine: number;
  lines: string[];
}

/** Splits markdown into fenced blocks and the prose lines outside them (1-based line numbers). */
function scan(markdown: string): { prose: { line: number; text: string }[]; blocks: Block[] } {
  const prose: { line: number; text: string }[] = [];
  const blocks: Block[] = [];
  let open: (Block & { fence: string }) | undefined;
  markdown.split('\n').forEach((text, i) => {
    const fence = /^\s*(`{3,}|~{3,})\s*([\w-]*)/.exec(text);
    if (open) {
      if (fence && fence[1].startsWith(open.fence) && text.trim() === fence[1]) {
        blocks.push(open);
        open = undefined;
      } else open.lines.push(text);
    } else if (fence) open = { fence: fence[1], lang: fence[2].toLowerCase(), startLine: i + 2, lines: [] };
    else prose.push({ line: i + 1, text });
  });
  return { prose, blocks };
}

/** GitHub's anchor for a heading (github-slugger): lower case, punctuation dropped, spaces to `-`. */
export function slug(heading: string): string {
  const text = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`/g, '')
    .trim()
    .toLowerCase();
  return text.replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '').replace(/ /g, '-');
}

/** The anchors a markdown file's headings get, with GitHub's -1, -2 for repeats. */
export function anchorsOf(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const anchors = new Set<string>();
  for (const { text } of scan(markdown).prose) {
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
    if (!h) continue;
    const base = slug(h[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    anchors.add(n === 0 ? base : `${base}-${n}`);
  }
  return anchors;
}

/** Inline links `[text](target)` in prose, outside code spans. */
export function linksOf(markdown: string): { line: number; target: string }[] {
  const links: { line: number; target: string }[] = [];
  for (const { line, text } of scan(markdown).prose) {
    const withoutCode = text.replace(/`[^`]*`/g, '');
    for (const m of withoutCode.matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) links.push({ line, target: m[1] });
  }
  return links;
}

/** The commands of the fenced shell blocks: continuations joined, comments dropped, split at && || ; |. */
export function shellCommandsOf(markdown: string): { line: number; words: string[] }[] {
  const commands: { line: number; words: string[] }[] = [];
  for (const block of scan(markdown).blocks) {
    const transcript = CONSOLE_FENCES.has(block.lang);
    if (!SHELL_FENCES.has(block.lang) && !transcript) continue;
    let pending = '';
    let pendingLine = block.startLine;
    block.lines.forEach((raw, i) => {
      if (pending === '') {
        pendingLine = block.startLine + i;
        if (transcript && !/^\s*\$\s/.test(raw)) return; // output
      }
      const text = raw.replace(/^\s*\$\s+/, '');
      if (/\\\s*$/.test(text)) {
        pending += text.replace(/\\\s*$/, ' ');
        return;
      }
      const full = pending + text;
      pending = '';
      const code = full.replace(/(^|\s)#.*$/, '').trim();
      if (code === '') return;
      for (const part of code.split(/\s*(?:&&|\|\||;|\|)\s*/)) {
        const words = part
          .trim()
          .split(/\s+/)
          .filter((w) => w !== '');
        while (words.length > 0 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0])) words.shift(); // VAR=value prefixes
        if (words.length > 0) commands.push({ line: pendingLine, words });
      }
    });
  }
  return commands;
}

/** Subcommands listed under "Commands:" in commander's help. */
function subcommandsOf(help: string): Set<string> {
  const section = help.split(/^Commands:\s*$/m)[1] ?? '';
  return new Set([...section.matchAll(/^ {2}([a-z][\w-]*)/gm)].map((m) => m[1]));
}

/** Every `--flag` and `-f` that a help text lists. */
function flagsOf(help: string): Set<string> {
  return new Set([...help.matchAll(/(?:^|[\s,[])(--?[A-Za-z][\w-]*)/gm)].map((m) => m[1]));
}

function checkCli(cli: Cli, args: string[], facts: RepoFacts): string[] {
  const problems: string[] = [];
  const end = args.indexOf('--');
  const own = end === -1 ? args : args.slice(0, end);
  const top = facts.help(cli);
  const commands = subcommandsOf(top);
  const sub = own.find((w) => !w.startsWith('-') && commands.has(w));
  const firstWord = own.find((w) => !w.startsWith('-'));
  if (firstWord !== undefined && sub === undefined && !own.includes('--help') && !own.includes('--version')) {
    problems.push(`\`${cli} ${firstWord}\`: no such subcommand (${cli} --help lists: ${[...commands].join(', ')})`);
  }
  const known = new Set([...flagsOf(top), ...(sub ? flagsOf(facts.help(cli, sub)) : [])]);
  for (const word of own) {
    if (!word.startsWith('-') || word === '-') continue;
    const flag = word.split('=')[0];
    if (!known.has(flag)) problems.push(`\`${cli}${sub ? ` ${sub}` : ''} ${flag}\`: no such flag (not in its --help)`);
  }
  return problems;
}

/** What is wrong with one command, as a list of messages. */
export function checkCommand(words: readonly string[], facts: RepoFacts): string[] {
  const problems: string[] = [];
  const [cmd, ...args] = words as [string, ...string[]];
  if (cmd === 'make') {
    for (const target of args.filter((a) => !a.startsWith('-') && !a.includes('='))) {
      if (!facts.makeTargets.has(target)) problems.push(`\`make ${target}\`: no such target in the Makefile`);
    }
  } else if (cmd === 'npm' && args[0] === 'run') {
    const script = args[1];
    if (!script || !facts.npmScripts.has(script)) problems.push(`\`npm run ${script ?? ''}\`: no such script in package.json`);
  } else if (cmd === 'kubectl' && args[0] === 'stowage') {
    problems.push(...checkCli('kubectl-stowage', args.slice(1), facts));
  } else if (cmd === 'kubectl-stowage') {
    problems.push(...checkCli('kubectl-stowage', args, facts));
  } else if (cmd === 'stowage') {
    problems.push(...checkCli('stowage', args, facts));
  } else if (cmd === 'node' && args[0] === 'dist/src/cli/main.js') {
    problems.push(...checkCli('stowage', args.slice(1), facts));
  } else if (cmd === 'node' && args[0] === 'dist/src/cli/kubectl-stowage.js') {
    problems.push(...checkCli('kubectl-stowage', args.slice(1), facts));
  }
  for (const word of words) {
    const bare = word.replace(/^-[\w-]+=/, '');
    if (CHECKED_PATH.test(bare) && !existsSync(path.join(facts.root, bare)))
      problems.push(`\`${bare}\`: no such file or directory in the repository`);
  }
  return problems;
}

/** Every problem of one markdown file (`file` relative to facts.root). */
export function checkMarkdown(file: string, markdown: string, facts: RepoFacts): Problem[] {
  const problems: Problem[] = [];
  const dir = path.dirname(path.join(facts.root, file));
  for (const { line, target } of linksOf(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto: …: not this repository's
    const [pathPart, anchor] = target.split('#') as [string, string | undefined];
    const resolved = pathPart === '' ? path.join(facts.root, file) : path.resolve(dir, decodeURIComponent(pathPart));
    if (!resolved.startsWith(facts.root + path.sep) && resolved !== facts.root) continue; // outside the repository
    if (!existsSync(resolved)) {
      problems.push({ file, line, message: `link ${target}: ${path.relative(facts.root, resolved)} does not exist` });
      continue;
    }
    if (anchor !== undefined && anchor !== '' && statSync(resolved).isFile() && resolved.endsWith('.md')) {
      const anchors = anchorsOf(resolved === path.join(facts.root, file) ? markdown : readFileSync(resolved, 'utf8'));
      if (!anchors.has(anchor))
        problems.push({ file, line, message: `link ${target}: ${path.relative(facts.root, resolved)} has no heading #${anchor}` });
    }
  }
  for (const { line, words } of shellCommandsOf(markdown)) {
    for (const message of checkCommand(words, facts)) problems.push({ file, line, message });
  }
  return problems;
}

/** README.md and every .md under docs/, relative to root. */
export function docFiles(root: string): string[] {
  const found = ['README.md'];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith('.md')) found.push(rel);
    }
  };
  walk('docs');
  return found.sort();
}

/** The facts of the repository at `root`; the CLIs run from its dist/ on this Node.js. */
export function repoFacts(root: string): RepoFacts {
  const makefile = readFileSync(path.join(root, 'Makefile'), 'utf8');
  const makeTargets = new Set([...makefile.matchAll(/^([A-Za-z0-9_.-]+)\s*:(?!=)/gm)].map((m) => m[1]).filter((t) => !t.startsWith('.')));
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  const entry: Record<Cli, string> = { stowage: 'dist/src/cli/main.js', 'kubectl-stowage': 'dist/src/cli/kubectl-stowage.js' };
  const cache = new Map<string, string>();
  return {
    root,
    makeTargets,
    npmScripts: new Set(Object.keys(pkg.scripts ?? {})),
    help(cli, subcommand) {
      const key = `${cli} ${subcommand ?? ''}`;
      let text = cache.get(key);
      if (text === undefined) {
        text = execFileSync(process.execPath, [path.join(root, entry[cli]), ...(subcommand ? [subcommand] : []), '--help'], {
          encoding: 'utf8',
          env: { ...process.env, COLUMNS: '200', STOWAGE_LOG_LEVEL: 'silent' },
          timeout: 30_000,
        });
        cache.set(key, text);
      }
      return text;
    },
  };
}
