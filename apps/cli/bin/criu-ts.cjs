#!/usr/bin/env node
'use strict';
// criu-ts under node: `node bin/criu-ts.cjs ARGS` (bin/criu-ts, the installed command, runs this).
require('./load-bundle.cjs').run('criu-ts');
