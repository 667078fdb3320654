// Package up implements `trellis up [DIR]`: the flags, the default
// directory and the exit status around package up, which does the work.
package up
