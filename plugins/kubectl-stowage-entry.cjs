// The first file the krew package's launcher runs: it checks the Node.js version before anything
// else loads, then starts the bundle (kubectl-stowage.mjs) beside it. Written in ES5 with
// CommonJS on purpose, so that every Node.js, however old, can parse it and print the message
// instead of a syntax error from the bundle. Stays out of tsc and the bundle; plugins/package.mjs
// copies it into the archive as kubectl-stowage.cjs.
'use strict';

// util.styleText, which the plugin colours its tables with, arrived in Node.js 20.12.0 (and 21.7.0).
var MINIMUM = { major: 20, minor: 12, patch: 0 };

/**
 * Why this Node.js cannot run the plugin, or null when it can.
 * @param {string} version process.version, e.g. "v20.20.2"
 * @param {string} [execPath] the node binary, named in the message
 */
function tooOldMessage(version, execPath) {
  var m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(String(version));
  var need = MINIMUM.major + '.' + MINIMUM.minor + '.' + MINIMUM.patch;
  if (m) {
    var have = [Number(m[1]), Number(m[2]), Number(m[3])];
    var want = [MINIMUM.major, MINIMUM.minor, MINIMUM.patch];
    for (var i = 0; i < 3; i++) {
      if (have[i] > want[i]) return null;
      if (have[i] < want[i]) break;
      if (i === 2) return null;
    }
  }
  return (
    'kubectl-stowage needs Node.js ' +
    need +
    ' or later; ' +
    'this is Node.js ' +
    version +
    (execPath ? ' (' + execPath + ')' : '') +
    '. ' +
    'Install a current Node.js and put it first on PATH, then run the command again.'
  );
}

module.exports = { MINIMUM: MINIMUM, tooOldMessage: tooOldMessage };

if (require.main === module) {
  var message = tooOldMessage(process.version, process.execPath);
  if (message) {
    process.stderr.write('kubectl-stowage: ' + message + '\n');
    process.exit(1);
  }
  var bundle = require('url').pathToFileURL(require('path').join(__dirname, 'kubectl-stowage.mjs')).href;
  // import() through Function, so that a Node.js too old for the syntax still parses this file.
  new Function('url', 'return import(url)')(bundle).catch(function (err) {
    process.stderr.write('kubectl-stowage: ' + (err && err.stack ? err.stack : String(err)) + '\n');
    process.exit(1);
  });
}
