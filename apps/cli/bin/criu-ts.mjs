#!/usr/bin/env node
import { main } from '../dist/criu-ts.bundle.mjs';

process.exitCode = await main(process.argv.slice(2));
