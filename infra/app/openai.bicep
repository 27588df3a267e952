// Azure OpenAI account (keys disabled: Entra ID only) with one chat model deployment.
param name string
param location string
param tags object = {}
param chatDeploymentName string
param chatModelName string = 'gpt-4o-mini'
param chatModelVersion string = '2024-07-18'
param chatDeploymentCapacity int = 30
param chatDeploymentSkuName string = 'GlobalStandard'

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

resource chat 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: chatDeploymentName
  sku: {
    name: chatDeploymentSkuName
    capacity: chatDeploymentCapacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: chatModelName
      version: chatModelVersion
    }
  }
}

output name string = account.name
output endpoint string = account.properties.endpoint
output chatDeploymentName string = chat.name
