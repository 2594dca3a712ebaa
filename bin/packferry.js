#!/usr/bin/env node
// Entry point of the `packferry` command; the code lives in dist/ after `npm run build`.
import { main } from '../dist/src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
