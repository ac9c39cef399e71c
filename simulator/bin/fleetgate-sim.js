#!/usr/bin/env node
// Runs the TypeScript simulator through tsx's loader.
import { register } from 'tsx/esm/api';

register();
await import('../src/run.ts');
