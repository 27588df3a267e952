// durableagent on Azure Functions Flex Consumption, provisioned by `azd up`.
//
// Everything here is a native `resource` declaration (no registry modules) so that the offline gate in
// tests/test_infra.py can parse it with pycep and scan it with checkov. See infra/README.md.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; used to derive resource names and tags.')
param environmentName string

@minLength(1)
@description('Primary location for all resources. Must be a region that offers Flex Consumption.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user (azd sets AZURE_PRINCIPAL_ID). Empty: no user role assignments.')
param principalId string = ''

@allowed([
  'User'
  'ServicePrincipal'
])
@description('Principal type of principalId: User for `azd up` from a workstation, ServicePrincipal from CI.')
param principalType string = 'User'

@description('Region of the Azure OpenAI account. Empty: same as location.')
param openAiLocation string = ''

@description('Chat model to deploy.')
param chatModelName string = 'gpt-4o-mini'

@description('Version of the chat model.')
param chatModelVersion string = '2024-07-18'

@description('Name of the chat model deployment. Empty: the model name.')
param chatDeploymentName string = ''

@minValue(1)
@description('Capacity of the chat model deployment, in thousands of tokens per minute.')
param chatDeploymentCapacity int = 30

@description('SKU of the chat model deployment.')
param chatDeploymentSkuName string = 'GlobalStandard'

@minLength(3)
@maxLength(45)
@description('Durable Functions task hub name (TASKHUB_NAME app setting; host.json reads %TASKHUB_NAME%).')
param taskHubName string = 'durableagent'

@description('Use the Durable Task Scheduler backend instead of Azure Storage (also copy infra/host.dts.json over host.json).')
param useDurableTaskScheduler bool = false

@allowed([
  512
  2048
  4096
])
@description('Flex Consumption instance memory size in MB.')
param instanceMemoryMB int = 2048

@minValue(1)
@maxValue(1000)
@description('Flex Consumption maximum number of instances.')
param maximumInstanceCount int = 100

@minValue(0)
@description('Always-ready instances for the `durable` trigger group (0 keeps the app scale-to-zero).')
param durableAlwaysReadyInstanceCount int = 0

@description('Name of the resource group. Empty: rg-<environmentName>.')
param resourceGroupName string = ''

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var chatDeployment = empty(chatDeploymentName) ? chatModelName : chatDeploymentName

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? '${abbrs.resourcesResourceGroups}${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    appInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module openai 'app/openai.bicep' = {
  name: 'openai'
  scope: rg
  params: {
    name: '${abbrs.cognitiveServicesAccounts}${resourceToken}'
    location: empty(openAiLocation) ? location : openAiLocation
    tags: tags
    chatDeploymentName: chatDeployment
    chatModelName: chatModelName
    chatModelVersion: chatModelVersion
    chatDeploymentCapacity: chatDeploymentCapacity
    chatDeploymentSkuName: chatDeploymentSkuName
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
    openAiAccountName: openai.outputs.name
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module dts 'app/dts.bicep' = if (useDurableTaskScheduler) {
  name: 'dts'
  scope: rg
  params: {
    schedulerName: '${abbrs.durableTaskSchedulers}${resourceToken}'
    taskHubName: taskHubName
    location: location
    tags: tags
    identityPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    identityName: identity.outputs.name
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    appInsightsName: monitoring.outputs.appInsightsName
    openAiEndpoint: openai.outputs.endpoint
    chatDeploymentName: openai.outputs.chatDeploymentName
    taskHubName: taskHubName
    durableTaskSchedulerEndpoint: useDurableTaskScheduler ? dts.outputs.endpoint : ''
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    durableAlwaysReadyInstanceCount: durableAlwaysReadyInstanceCount
  }
  dependsOn: [
    rbac
  ]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output RESOURCE_GROUP string = rg.name
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_CLIENT_ID string = identity.outputs.clientId
output AZURE_OPENAI_ENDPOINT string = openai.outputs.endpoint
output AZURE_OPENAI_CHAT_DEPLOYMENT_NAME string = openai.outputs.chatDeploymentName
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_FUNCTION_URL string = api.outputs.uri
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output TASKHUB_NAME string = taskHubName
output USE_DURABLE_TASK_SCHEDULER bool = useDurableTaskScheduler
output DURABLE_TASK_SCHEDULER_ENDPOINT string = useDurableTaskScheduler ? dts.outputs.endpoint : ''
