'use strict';

// Local Serverless plugin (serverless.yml `plugins: - ./tools/alarm_email_check.js`), offline: no AWS call.
//
// Every alarm notifies the stage's SNS topic, and only `--param="alarmEmail=…"` subscribes anyone to it. A
// production stage deployed without that parameter would raise alarms nobody receives, so `serverless deploy`
// (and `serverless package`) of a stage in PRODUCTION_STAGES without an alarm e-mail prints a warning with the
// two ways to fix it. Other stages get one informational line. The stack output AlarmSubscription says the
// same after the deploy (config/infrastructure/outputs.yml).

const PRODUCTION_STAGES = new Set(['prod']);

function advice(stage, region) {
  const topic = `$(npx serverless info --stage ${stage} --verbose | awk '/AlarmTopicArn/ {print $2}')`;
  return [
    `The alarm topic of stage "${stage}" has no subscriber: alarms will reach nobody.`,
    `Redeploy with an address: make deploy STAGE=${stage} SLS_ARGS='--param="alarmEmail=ops@example.com"'`,
    `or subscribe one yourself: aws sns subscribe --region ${region} --protocol email ` +
      `--notification-endpoint ops@example.com --topic-arn "${topic}"`,
    'then confirm the subscription from the e-mail AWS sends.',
  ];
}

// Returns the warning lines for a stage and alarm e-mail ([] when nothing is wrong or it is not production).
function check({ stage, region, alarmEmail }) {
  if ((alarmEmail || '').trim() !== '') return [];
  if (!PRODUCTION_STAGES.has(stage)) return [];
  return advice(stage, region);
}

class AlarmEmailCheck {
  constructor(serverless, options, { log } = {}) {
    this.serverless = serverless;
    this.options = options || {};
    this.log = log;
    this.done = false;
    const run = () => this.warn();
    this.hooks = {
      'before:package:finalize': run,
      'before:deploy:deploy': run,
    };
  }

  warn() {
    if (this.done) return;
    this.done = true;
    const provider = this.serverless.getProvider('aws');
    const custom = this.serverless.service.custom || {};
    const lines = check({ stage: provider.getStage(), region: provider.getRegion(), alarmEmail: custom.alarmEmail });
    if (lines.length === 0) return;
    const message = `alarmEmail: ${lines.join('\n  ')}`;
    if (this.log && this.log.warning) this.log.warning(message);
    else process.stderr.write(`${message}\n`);
  }
}

module.exports = AlarmEmailCheck;
module.exports.check = check;
