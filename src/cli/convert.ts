import type { Command } from 'commander';

// Not written yet: this command is registered by the file's owner.
export function register(_program: Command): void {}
