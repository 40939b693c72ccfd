// Command wc is wasmd's Go example plug-in: a WASI command that wasmd runs once per call
// (the command ABI). The call's params are [stdin, args]; the result is
// {exit_code, stdout, stderr}.
//
// Build (examples/go/build.py runs exactly this, from this folder, with GOPROXY=off
// GOFLAGS=-mod=mod GOTOOLCHAIN=local, a private GOCACHE/GOPATH/HOME and telemetry off):
//
//	GOOS=wasip1 GOARCH=wasm go build -trimpath -ldflags=-s -o wc.wasm .
//
// Modes, chosen by the call's args:
//
//	(none)       count stdin: "lines words bytes\n", as wc(1) counts them
//	-u           write stdin upper-cased
//	--fail       write "failing as asked" to stderr and exit 3
//	--env        print the environment, one VAR=value per line
//	--read PATH  print the file at PATH; on error, the error to stderr and exit 2
//
// --env and --read show wasmd's deny-by-default WASI: the guest sees no environment
// variable and no file unless the plug-in's manifest grants it under [wasi].
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	flags := flag.NewFlagSet(os.Args[0], flag.ContinueOnError)
	upper := flags.Bool("u", false, "write stdin upper-cased")
	fail := flags.Bool("fail", false, "write a message to stderr and exit 3")
	env := flags.Bool("env", false, "print the environment, one variable per line")
	read := flags.String("read", "", "print the file at `PATH`")
	if err := flags.Parse(os.Args[1:]); err != nil {
		os.Exit(2) // flag has already written the problem and the usage to stderr
	}

	switch {
	case *fail:
		fmt.Fprintln(os.Stderr, "failing as asked")
		os.Exit(3)
	case *env:
		for _, kv := range os.Environ() {
			fmt.Println(kv)
		}
	case *read != "":
		content, err := os.ReadFile(*read)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Stdout.Write(content)
	default:
		input, err := io.ReadAll(os.Stdin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if *upper {
			os.Stdout.Write(bytes.ToUpper(input))
			return
		}
		fmt.Printf("%d %d %d\n", bytes.Count(input, []byte("\n")), len(bytes.Fields(input)), len(input))
	}
}
