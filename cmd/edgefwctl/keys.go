package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/edgefw/edgefw/wg"
)

// publicKeyOutput is keygen's and pubkey's JSON output. Private keys are
// never printed, in any format.
type publicKeyOutput struct {
	File      string `json:"file"`
	PublicKey string `json:"publicKey"`
}

func (a *app) keygenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keygen FILE",
		Short: "Create a WireGuard private key file and print its public key",
		Long: `keygen writes a new WireGuard private key to FILE (mode 0600, in a directory
created with mode 0700) and prints the public key to give to the peers. It
refuses to overwrite an existing file: replacing a host's key cuts it off
from every peer that knows the old one. The private key is never printed.`,
		Example: `  edgefwctl keygen /etc/edgefw/keys/wg0.key
  edgefwctl keygen /etc/edgefw/keys/wg1.key > wg1.pub`,
		Args: oneArg("the private key file to create"),
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		pub, err := wg.GenerateKeyFile(args[0])
		if err != nil {
			return fmt.Errorf("keygen: %w", err)
		}
		return a.printPublicKey(*out, args[0], pub)
	}
	return cmd
}

func (a *app) pubkeyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pubkey FILE",
		Short: "Print the public key of a WireGuard private key file",
		Long: `pubkey reads the WireGuard private key in FILE and prints its public key. The
file must be owned by root or by the user running edgefwctl, must not be
readable by its group or others, and is not read through a symbolic link.`,
		Example: `  edgefwctl pubkey /etc/edgefw/keys/wg0.key
  edgefwctl pubkey -o json /etc/edgefw/keys/wg0.key`,
		Args: oneArg("the private key file"),
	}
	out := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		pub, err := wg.PublicKeyFromFile(args[0])
		if err != nil {
			return fmt.Errorf("pubkey: %w", err)
		}
		return a.printPublicKey(*out, args[0], pub)
	}
	return cmd
}

func (a *app) printPublicKey(out output, file, pub string) error {
	if out == outputJSON {
		return writeJSON(a.stdout, publicKeyOutput{File: file, PublicKey: pub})
	}
	_, err := fmt.Fprintln(a.stdout, pub)
	return err
}
