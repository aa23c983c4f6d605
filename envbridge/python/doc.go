// Package python holds mledojo_adapter.py, a standard-library Python HTTP
// server that exposes a real MLE-Dojo (KaggleEnvironment) over smtrain's
// environment protocol (DESIGN 6.4, package httpenv), and the Go test that
// drives it through every route with httpenv.Client against a stand-in
// module (testdata/fake_mledojo, clearly not MLE-Dojo). See README.md for
// running it against a real MLE-Dojo install. There is no Go API here.
package python
