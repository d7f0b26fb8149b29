// `cdk synth` / `cdk deploy` entry point (cdk.json runs it with tsx).
import { App } from 'aws-cdk-lib';
import { buildApp } from '../lib/app';

buildApp(new App());
