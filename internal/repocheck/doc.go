// Package repocheck has no code: its tests check the repository itself,
// that it is self-contained (no file points outside it) and that README.md
// links the documents under docs/.
package repocheck
