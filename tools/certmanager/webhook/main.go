// The cert-manager webhook, built from the packages of the module
// github.com/cert-manager/cert-manager (tools/certmanager/build.sh says why
// the release's own cmd/webhook cannot be used): the same flags
// (pkg/webhook/options), --config file and server as cmd/webhook/app.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	config "github.com/cert-manager/cert-manager/internal/apis/config/webhook"
	"github.com/cert-manager/cert-manager/internal/apis/config/webhook/validation"
	cmdutil "github.com/cert-manager/cert-manager/internal/cmd/util"
	cmwebhook "github.com/cert-manager/cert-manager/internal/webhook"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
	"github.com/cert-manager/cert-manager/pkg/util/configfile"
	utilfeature "github.com/cert-manager/cert-manager/pkg/util/feature"
	webhookconfigfile "github.com/cert-manager/cert-manager/pkg/webhook/configfile"
	"github.com/cert-manager/cert-manager/pkg/webhook/options"
)

func parse(args []string, cfg *config.WebhookConfiguration) (string, error) {
	flags := options.NewWebhookFlags()
	fs := pflag.NewFlagSet("webhook", pflag.ContinueOnError)
	flags.AddFlags(fs)
	options.AddConfigFlags(fs, cfg)
	return flags.Config, fs.Parse(args)
}

func load(args []string) (*config.WebhookConfiguration, error) {
	cfg, err := options.NewWebhookConfiguration()
	if err != nil {
		return nil, err
	}
	file, err := parse(args, cfg)
	if err != nil {
		return nil, err
	}
	if file != "" {
		// as cmd/webhook: the file first, then the flags again over it
		loader, err := configfile.NewConfigurationFSLoader(nil, file)
		if err != nil {
			return nil, err
		}
		fromFile := webhookconfigfile.New()
		if err := loader.Load(fromFile); err != nil {
			return nil, fmt.Errorf("config file %s: %w", file, err)
		}
		fromFile.Config.DeepCopyInto(cfg)
		if _, err := parse(args, cfg); err != nil {
			return nil, err
		}
	}
	if err := utilfeature.DefaultMutableFeatureGate.SetFromMap(cfg.FeatureGates); err != nil {
		return nil, err
	}
	if errs := validation.ValidateWebhookConfiguration(cfg, nil); len(errs) > 0 {
		return nil, errs.ToAggregate()
	}
	return cfg, logf.ValidateAndApply(&cfg.Logging)
}

func main() {
	ctx, exit := cmdutil.SetupExitHandler(context.Background(), cmdutil.GracefulShutdown)
	defer exit()
	logf.InitLogs()
	defer logf.FlushLogs()
	ctx = logf.NewContext(ctx, logf.Log, "webhook")
	log := logf.FromContext(ctx)
	cfg, err := load(os.Args[1:])
	if err == nil {
		log.Info("starting cert-manager webhook")
		var srv interface{ Run(context.Context) error }
		srv, err = cmwebhook.NewCertManagerWebhookServer(log, *cfg)
		if err == nil {
			err = srv.Run(ctx)
		}
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error(err, "cert-manager webhook")
		cmdutil.SetExitCode(err)
	}
}
