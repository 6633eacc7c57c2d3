#!/usr/bin/env node
import { main } from '../dist/crit-ts.js';

process.exitCode = await main(process.argv.slice(2));
