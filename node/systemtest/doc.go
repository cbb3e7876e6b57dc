// Package systemtest runs the real roundtable binary: a region of
// `roundtable serve` processes on loopback, built from the CLI the way an
// operator would (ca, init, synth, import, genesis, serve), and then
// crashed, restarted and checked through the HTTP API. It holds tests only;
// the in-process tests of each package cannot catch what lives between
// processes (flags, exit codes, files left by a SIGKILL, the admin socket).
//
// Every process listens on 127.0.0.1 and is killed by the test that
// started it. The binary is built once, in TestMain.
package systemtest
