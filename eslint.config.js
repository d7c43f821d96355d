// eslint (flat config) over the tab's frontend (plain ES modules served as they are, no build
// step, run in the browser) and the node scripts of the tests. `make lint` runs it.
import js from '@eslint/js';
import globals from 'globals';

export default [
  {ignores: ['node_modules/', '.venv*/', 'build/', 'artifacts/', 'demo_logs/']},
  js.configs.recommended,
  {
    files: ['frontend/**/*.js'],
    languageOptions: {ecmaVersion: 2022, sourceType: 'module', globals: {...globals.browser}},
  },
  {
    files: ['tests/**/*.mjs', 'tests/**/*.js', 'eslint.config.js'],
    languageOptions: {ecmaVersion: 2022, sourceType: 'module', globals: {...globals.node}},
  },
  {
    rules: {
      'no-unused-vars': ['error', {args: 'after-used', argsIgnorePattern: '^_', caughtErrors: 'none'}],
      eqeqeq: ['error', 'smart'],
      'prefer-const': 'error',
      'no-var': 'error',
    },
  },
];
