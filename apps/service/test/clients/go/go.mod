module gocriu-client

go 1.19

require (
	github.com/checkpoint-restore/go-criu/v5 v5.3.0
	google.golang.org/protobuf v1.28.1
)

// Debian 12's golang-github-checkpoint-restore-go-criu-dev and golang-google-protobuf-dev: built
// offline from their sources, nothing is downloaded.
replace github.com/checkpoint-restore/go-criu/v5 => /usr/share/gocode/src/github.com/checkpoint-restore/go-criu

replace google.golang.org/protobuf => /usr/share/gocode/src/google.golang.org/protobuf
