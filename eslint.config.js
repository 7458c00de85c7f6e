// Lint: the recommended JS and TypeScript rules, relaxed only where the engine's numeric code needs it.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'native/build/**', 'runs/**', 'models/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // plain CommonJS helper scripts run by npm (no TypeScript, Node globals)
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', process: 'readonly', __dirname: 'readonly', module: 'writable', console: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // the playground's page script runs in the browser (no build step)
    files: ['playground/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: { document: 'readonly', window: 'readonly', fetch: 'readonly', FileReader: 'readonly', TextDecoder: 'readonly', Option: 'readonly', Image: 'readonly' },
    },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      'prefer-const': 'error',
    },
  },
);
