// ESLint for corral's TypeScript: the recommended JavaScript and typescript-eslint rules.
// Layering is checked by dependency-cruiser (.dependency-cruiser.cjs), formatting by Prettier.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '**/build/', 'vagrant/', 'native/**/*.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { files: ['**/*.cjs', 'bin/*.js', 'scripts/**/*.js'], languageOptions: { globals: { module: 'readonly', require: 'readonly', process: 'readonly', console: 'readonly' } } },
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module' },
    rules: {
      // `_name` marks a parameter or binding that is unused on purpose.
      '@typescript-eslint/no-unused-expressions': ['error', { allowShortCircuit: true, allowTernary: true }],
      // `let x: T[] = []; try { x = read() } catch { … }`: the initializer is what TypeScript's definite-assignment check needs.
      'no-useless-assignment': 'off',
      // A `let` declared before the closure that reads it and assigned once after is the idiom for a cycle of references.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
);
